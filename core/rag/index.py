"""The search table ``chunk_vectors`` and its indexes: its layout, opening it, the full-text index and the
approximate vector index (built in the background of ``doctune index``). The step that fills it is ``step.run``.
"""
from __future__ import annotations

import hashlib
import threading
import time
from datetime import timedelta

from doctune.core.events import Cancelled, CancelToken, Events

TABLE = "chunk_vectors"


INDEX_ROWS_PER_S = 2_000  # approximate-index build speed measured on 2 cores (bench/rag.py), for its progress


PROGRESS_INTERVAL_S = 1.0


def text_sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def table_schema(dim: int):
    import pyarrow as pa

    return pa.schema([
        pa.field("chunk_id", pa.string(), nullable=False),
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("doc_path", pa.string()),
        pa.field("doc_title", pa.string()),
        pa.field("ordinal", pa.int32()),
        pa.field("page_start", pa.int32()),
        pa.field("page_end", pa.int32()),
        pa.field("text", pa.string(), nullable=False),
        pa.field("text_sha", pa.string(), nullable=False),
        pa.field("embedder", pa.string(), nullable=False),
        pa.field("vector", pa.list_(pa.list_(pa.float32(), dim)), nullable=False),
    ])


def current_layout(table) -> bool:
    """Whether the table holds the windows' vectors of each chunk (a list of vectors), not the earlier single one."""
    import pyarrow as pa

    vector = table.schema.field("vector").type
    return pa.types.is_list(vector) and pa.types.is_fixed_size_list(vector.value_type)


def open_table(db, name: str = TABLE):
    """The table, or None when it was never created (the project was never indexed)."""
    try:
        return db.open_table(name)
    except ValueError:  # lancedb: "Table '…' was not found"
        return None


def connect_fresh(project):
    """A connection whose tables always read the latest data (other handles and processes write too)."""
    import lancedb

    project.lancedb_dir.mkdir(parents=True, exist_ok=True)
    return lancedb.connect(str(project.lancedb_dir), read_consistency_interval=timedelta(0))


def stored_identity(table) -> str | None:
    rows = table.search().select(["embedder"]).limit(1).to_arrow().column("embedder").to_pylist()
    return rows[0] if rows else None


def refresh_fts(table) -> None:
    from lancedb.index import FTS

    table.create_index("text", config=FTS(), replace=True)


def vector_index_due(table, min_rows: int) -> bool:
    """Whether the approximate vector index should be (re)built: the table has ``min_rows`` chunks (0: never) and
    no index yet, or a tenth of its rows are not in the index (they are still found, scanned exactly)."""
    rows = table.count_rows()
    if min_rows <= 0 or rows < min_rows:
        return False
    vector_index = next((index for index in table.list_indices() if index.columns == ["vector"]), None)
    return vector_index is None or table.index_stats(vector_index.name).num_unindexed_rows > rows // 10


def vector_index_config():
    """IVF partitions (LanceDB's default size) of vectors compressed to one byte per dimension (SQ); search
    re-scores the best candidates exactly (``search.ANN_REFINE``).

    Measured on clustered vectors at 100k chunks, 2 busy cores: IVF-SQ built in 46 s with recall@10 0.98 (1.0
    re-scored); IVF-PQ (48 sub-vectors) took 319 s and reached 0.87 even re-scored (its 48-byte codes blur the
    small gaps between near neighbours); HNSW took minutes more. At 1M chunks: 248-264 s, recall in
    ``search.ANN_NPROBES``.
    """
    from lancedb.index import IvfSq

    return IvfSq(distance_type="cosine")


def refresh_vector_index(table, min_rows: int, events: Events | None = None, cancel: CancelToken | None = None) -> bool:
    """Build the approximate vector index when ``vector_index_due``; True when built.

    LanceDB builds it on a background thread while this one reports progress
    (time spent against the time expected for the table's size) and watches
    for cancel; the table stays searchable meanwhile (exactly, without the
    index). LanceDB commits the index whole when it is done, so a failed build
    leaves the table as it was; on cancel this raises ``Cancelled`` at once and
    the build thread ends with the process (``doctune index`` is a process of
    its own).
    """
    if not vector_index_due(table, min_rows):
        return False
    events = events or Events()
    rows = table.count_rows()
    expected = max(1.0, rows / INDEX_ROWS_PER_S)
    outcome: dict[str, BaseException | None] = {}

    def build() -> None:
        try:
            table.create_index("vector", config=vector_index_config(), replace=True)
            outcome["error"] = None
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = exc

    worker = threading.Thread(target=build, name="doctune-vector-index", daemon=True)
    started = time.monotonic()
    worker.start()
    message = f"approximate vector index of {rows} chunks (time estimated)"  # the progress bar shows 60 characters
    while worker.is_alive():
        elapsed = time.monotonic() - started
        events.progress(round(min(elapsed, expected * 0.99), 1), round(expected, 1), message, unit="s",
                        stage="index.vectors", eta_s=round(max(expected - elapsed, 0.0), 1))
        if cancel is not None and cancel.wait(PROGRESS_INTERVAL_S):
            raise Cancelled()
        worker.join(PROGRESS_INTERVAL_S if cancel is None else 0)
    if outcome.get("error") is not None:
        raise outcome["error"]
    events.progress(round(expected, 1), round(expected, 1), message, unit="s", stage="index.vectors",
                    seconds=round(time.monotonic() - started, 1))
    return True


def has_fts(table) -> bool:
    return any(index.index_type == "FTS" for index in table.list_indices())


def has_vector_index(table) -> bool:
    return any(index.columns == ["vector"] for index in table.list_indices())
