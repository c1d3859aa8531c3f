"""The index step, ``run``: embed the project's chunks into the search table ``chunk_vectors``.

Each row holds a chunk's id, document, pages, text, the SHA-256 of its text,
its vectors and the identity of the embedder that made them. A chunk longer
than the embedder reads at once (its ``max_seq_length``) gets one vector per
overlapping window, so every part of it can be found; vector search scores a
chunk by its best window (LanceDB multivector search, maximum similarity).
A table of the earlier layout (one vector per chunk, blind past the first
window) is rebuilt, never mixed with the new one. A run embeds only
chunks that are new or whose text changed, deletes rows of chunks that are
gone (removed or replaced documents), and refreshes the full-text index. When
the configured embedder differs from the one that made the stored vectors,
the table is rebuilt from scratch: vectors of two models are never mixed.

Safe points are between batches; rows are appended batch by batch, so a
cancelled or crashed run resumes where it stopped.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from doctune.core.errors import UserError
from doctune.core.events import CancelToken, Events
from doctune.core.rag.index import (
    TABLE,
    current_layout,
    has_fts,
    open_table,
    refresh_fts,
    refresh_vector_index,
    stored_identity,
    table_schema,
    text_sha,
)

DELETE_BATCH = 500


WRITE_ROWS = 2048


class NothingToIndex(UserError):
    """The project has no chunks to index."""


class IndexParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project_dir: Path = Field(description="The project folder.")
    embedder: str | None = Field(None, description="Embedder name or folder (default: the project's rag.embedder).")
    batch_size: int | None = Field(None, ge=1, le=4096, description="Chunks per embedding batch (default: rag.embed_batch).")
    rebuild: bool = Field(False, description="Embed every chunk again even if unchanged.")


@dataclass


class IndexResult:
    embedded: int
    removed: int
    unchanged: int
    total: int
    embedder: str
    rebuilt: bool
    seconds: float


def run(params: IndexParams, *, events: Events, cancel: CancelToken) -> IndexResult:
    """Bring ``chunk_vectors`` up to date with the project's chunks."""
    import pyarrow as pa

    from doctune.core.project import Project
    from doctune.core.rag.embedder import load_embedder, resolve
    from doctune.core.store import connect, list_chunks

    started = time.perf_counter()
    project = Project.open(params.project_dir)
    settings = project.config.rag
    chunks = list_chunks(project)
    db = connect(project)
    table = open_table(db)
    if not chunks and table is None:
        raise NothingToIndex(
            f"The project {project.root} has no documents to index.",
            hint=f"Add some first: doctune add FILES... -p {project.root}, then run doctune index -p {project.root}",
            window_hint="Add documents on the Documents page (Add files… or Add folder…) first.",
        )
    spec = params.embedder or settings.embedder
    identity = resolve(spec).identity
    rebuilt = False
    if table is not None and _needs_rebuild(table, identity, params.rebuild, events):
        db.drop_table(TABLE)
        table, rebuilt = None, True
    current = {chunk["id"]: (chunk, text_sha(chunk["text"])) for chunk in chunks}
    stale, todo = _plan(table, current)
    # Loading the embedder takes seconds: only when there is something to embed (a re-run with nothing new is instant).
    embedder = load_embedder(spec, offline=project.config.privacy.offline) if todo or table is None else None
    if table is not None and embedder is not None and _vector_dim(table) != embedder.dim:  # the model changed size
        db.drop_table(TABLE)
        table, rebuilt = None, True
        stale, todo = _plan(table, current)
    if table is None:
        table = db.create_table(TABLE, schema=table_schema(embedder.dim))
    if stale:
        _delete_rows(table, stale)
    batch_size = params.batch_size or settings.embed_batch
    tracker = events.tracker(len(todo), unit="chunks", stage="index")
    tracker.update(0, "embedding", force=True)
    pending: list[dict[str, Any]] = []
    schema = table.schema
    try:
        for start in range(0, len(todo), batch_size):
            cancel.raise_if_cancelled()
            batch = todo[start : start + batch_size]
            vectors = embedder.encode_chunks([chunk["text"] for chunk, _ in batch], batch_size=batch_size)
            pending += [_row(chunk, sha, identity, vector) for (chunk, sha), vector in zip(batch, vectors)]
            if len(pending) >= WRITE_ROWS:
                table.add(pa.Table.from_pylist(pending, schema=schema))
                pending = []
            tracker.advance(len(batch))
    finally:  # keep what was embedded, also when cancelled
        if pending:
            table.add(pa.Table.from_pylist(pending, schema=schema))
    if todo or stale or not has_fts(table):
        events.log("Updating the full-text index.")
        refresh_fts(table)
    if refresh_vector_index(table, settings.ann_min_rows, events, cancel):
        events.log("Built the approximate vector index.")
    result = IndexResult(
        embedded=len(todo), removed=len(stale) - sum(1 for cid in stale if cid in current), unchanged=len(current) - len(todo),
        total=table.count_rows(), embedder=identity, rebuilt=rebuilt, seconds=time.perf_counter() - started,
    )
    events.metric(embedded=result.embedded, removed=result.removed, total=result.total,
                  chunks_per_s=round(result.embedded / result.seconds, 2) if result.embedded else None)
    return result


def _plan(table, current: dict[str, tuple[dict, str]]) -> tuple[list[str], list[tuple[dict, str]]]:
    """(ids of stored rows to delete, chunks to embed — longest first, so a batch pads little)."""
    stored = _stored_shas(table) if table is not None else {}
    stale = sorted(cid for cid, sha in stored.items() if cid not in current or current[cid][1] != sha)
    todo = [(chunk, sha) for cid, (chunk, sha) in current.items() if stored.get(cid) != sha]
    todo.sort(key=lambda item: len(item[0]["text"]), reverse=True)
    return stale, todo


def _needs_rebuild(table, identity: str, requested: bool, events: Events) -> bool:
    """Whether the stored table must be dropped: asked for, of the earlier layout, or made by another embedder."""
    if not current_layout(table):
        events.log("The search index was built by an earlier DocTune (one vector per chunk): embedding every chunk again.")
        return True
    if requested or _mixed(table, identity):
        previous = stored_identity(table)
        if previous and previous != identity:
            events.log(f"The embedder changed ({previous} → {identity}): embedding every chunk again.")
        return True
    return False


def _mixed(table, identity: str) -> bool:
    from doctune.core.store import sql_string

    return table.count_rows(f"embedder != {sql_string(identity)}") > 0


def _vector_dim(table) -> int:
    return table.schema.field("vector").type.value_type.list_size


def _stored_shas(table) -> dict[str, str]:
    data = table.search().select(["chunk_id", "text_sha"]).limit(None).to_arrow()
    return dict(zip(data.column("chunk_id").to_pylist(), data.column("text_sha").to_pylist()))


def _delete_rows(table, chunk_ids: list[str]) -> None:
    from doctune.core.store import sql_in

    for start in range(0, len(chunk_ids), DELETE_BATCH):
        table.delete(sql_in("chunk_id", chunk_ids[start : start + DELETE_BATCH]))


def _row(chunk: dict[str, Any], sha: str, identity: str, vectors) -> dict[str, Any]:
    return {
        "chunk_id": chunk["id"], "doc_id": chunk["doc_id"], "doc_path": chunk.get("doc_path"),
        "doc_title": chunk.get("doc_title"), "ordinal": chunk.get("ordinal"), "page_start": chunk.get("page_start"),
        "page_end": chunk.get("page_end"), "text": chunk["text"], "text_sha": sha, "embedder": identity,
        "vector": list(vectors),
    }
