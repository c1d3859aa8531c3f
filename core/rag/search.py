"""Hybrid search over ``chunk_vectors``: vector and full-text results fused.

Vector search scores a chunk by its best window (see ``index``), so a long
chunk is found by any part of it. Both searches return their best
``rag.candidates`` chunks; reciprocal rank fusion scores each chunk
``sum(1 / (rrf_k + rank))`` over the lists it is in, so a chunk that both
find ranks first, and neither search's raw score scale matters. A configured cross-encoder then reorders the best fused chunks.
Chunks of documents that are no longer in the project are never returned,
even before the next ``doctune index``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from doctune.core.errors import UserError
from doctune.core.rag.hits import Hit

if TYPE_CHECKING:  # pragma: no cover
    from doctune.core.project import Project

Mode = Literal["hybrid", "vector", "text"]
COLUMNS = ["chunk_id", "doc_id", "doc_path", "doc_title", "page_start", "page_end", "text"]
RERANK_POOL = 3


class IndexMissing(UserError):
    """No search index (or no documents) in the project yet."""


class IndexStale(UserError):
    """The index was built with another embedder than the one configured."""


def rrf_fuse(rankings: list[list[str]], rrf_k: int = 60) -> dict[str, float]:
    """Reciprocal rank fusion of ranked id lists (best first)."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, chunk_id in enumerate(ranking, 1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (rrf_k + rank)
    return scores


def _hit(row: dict[str, Any], score: float) -> Hit:
    return Hit(row["chunk_id"], row["doc_id"], row["doc_path"], row["doc_title"], row["page_start"], row["page_end"],
               row["text"], float(score))


class Retriever:
    """The search index of one project, with its embedder loaded (reuse it for many queries)."""

    def __init__(self, project: "Project", *, embedder: str | None = None, reranker: str | None = None) -> None:
        from doctune.core.rag.embedder import load_embedder, load_reranker, resolve
        from doctune.core.rag.index import connect_fresh, current_layout, has_fts, open_table, stored_identity
        from doctune.core.store import DOCUMENTS

        self.project = project
        self.settings = project.config.rag
        offline = project.config.privacy.offline
        db = connect_fresh(project)
        self.documents = open_table(db, DOCUMENTS)
        self.table = open_table(db)
        if self.table is None or self.table.count_rows() == 0:
            raise self._missing()
        if not has_fts(self.table):  # an index run stopped before its last step
            raise IndexMissing(f"The search index of {project.root} is incomplete.",
                               hint=f"Finish it with: doctune index -p {project.root}")
        if not current_layout(self.table):  # one vector per chunk, blind past the embedder's first window
            raise IndexStale(f"The search index of {project.root} was built by an earlier version of DocTune.",
                             hint=f"Rebuild it with: doctune index -p {project.root}")
        spec = embedder or self.settings.embedder
        stored = stored_identity(self.table)
        if stored != resolve(spec).identity:
            raise IndexStale(
                f"The search index of {project.root} was built with the embedder {stored}, "
                f"but the project is set to use {spec}.",
                hint=f"Rebuild it with: doctune index -p {project.root}",
            )
        self.embedder = load_embedder(spec, offline=offline)
        reranker = self.settings.reranker if reranker is None else reranker
        self.reranker = load_reranker(reranker, offline=offline) if reranker else None

    def live_document_ids(self) -> set[str]:
        """Documents stored as ok right now (read fresh: a removal shows at once)."""
        if self.documents is None:
            return set()
        rows = self.documents.search().where("status = 'ok'").select(["id"]).limit(None).to_arrow()
        return set(rows.column("id").to_pylist())

    def _missing(self) -> IndexMissing:
        root = self.project.root
        if not self.live_document_ids():
            return IndexMissing(
                f"The project {root} has no documents to search.",
                hint=f"Add documents with: doctune add FILES... -p {root}, then build the index with: doctune index -p {root}",
            )
        return IndexMissing(f"The documents of {root} are not indexed yet.", hint=f"Build the index with: doctune index -p {root}")

    # ----- the two searches ------------------------------------------------------------------
    def vector_rows(self, query: str, limit: int) -> list[dict[str, Any]]:
        vector = self.embedder.encode_query(query)
        rows = (self.table.search(vector, vector_column_name="vector").metric("cosine").limit(limit)
                .select(COLUMNS + ["_distance"]).to_arrow().to_pylist())
        for row in rows:
            row["score"] = 1.0 - row["_distance"]
        return rows

    def text_rows(self, query: str, limit: int) -> list[dict[str, Any]]:
        rows = (self.table.search(query, query_type="fts", fts_columns="text").limit(limit)
                .select(COLUMNS + ["_score"]).to_arrow().to_pylist())
        for row in rows:
            row["score"] = row["_score"]
        return rows

    # ----- the public search -----------------------------------------------------------------
    def search(self, query: str, k: int | None = None, mode: Mode = "hybrid") -> list[Hit]:
        """The ``k`` best chunks for ``query``, best first."""
        k = k or self.settings.k
        if not query.strip():
            return []
        pool = max(self.settings.candidates, k * RERANK_POOL if self.reranker else k)
        live = self.live_document_ids()
        vector = self.vector_rows(query, pool) if mode in ("hybrid", "vector") else []
        text = self.text_rows(query, pool) if mode in ("hybrid", "text") else []
        rows = {row["chunk_id"]: row for row in [*text, *vector] if row["doc_id"] in live}
        if mode == "hybrid":
            fused = rrf_fuse([[r["chunk_id"] for r in vector], [r["chunk_id"] for r in text]], self.settings.rrf_k)
            scored = [(fused[cid], row) for cid, row in rows.items()]
        else:
            scored = [(row["score"], row) for row in rows.values()]
        scored.sort(key=lambda pair: pair[0], reverse=True)
        if self.reranker is not None:
            return self._rerank(query, [row for _, row in scored[: k * RERANK_POOL]], k)
        return [_hit(row, score) for score, row in scored[:k]]

    def _rerank(self, query: str, rows: list[dict[str, Any]], k: int) -> list[Hit]:
        if not rows:
            return []
        scores = self.reranker.predict([(query, row["text"]) for row in rows], show_progress_bar=False)
        ranked = sorted(zip(scores, range(len(rows)), rows), key=lambda item: (-float(item[0]), item[1]))
        return [_hit(row, score) for score, _, row in ranked[:k]]


def search(project: "Project", query: str, k: int = 8, mode: Mode = "hybrid") -> list[Hit]:
    """The ``k`` chunks of the project that best match ``query`` (see ``Retriever`` to reuse one for many queries)."""
    return Retriever(project).search(query, k=k, mode=mode)
