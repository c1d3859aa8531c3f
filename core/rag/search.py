"""Hybrid search over ``chunk_vectors``: vector and full-text results fused.

Vector search scores a chunk by its best window (see ``index``), so a long
chunk is found by any part of it. Both searches return their best
``rag.candidates`` chunks; reciprocal rank fusion scores each chunk
``sum(1 / (rrf_k + rank))`` over the lists it is in, so a chunk that both
find ranks first, and neither search's raw score scale matters. A configured cross-encoder then reorders the best fused chunks.
Chunks of documents that are no longer in the project are never returned,
even before the next ``doctune index``.

Where the time goes (100k chunks, 2 cores). Before the in-memory layout:
LanceDB's exact multivector scan ~220 ms, query embedding ~35 ms, full-text
search ~12 ms, reading the live document ids ~7 ms. So a query scans an
in-memory copy of the vectors (``matrix``) instead of the table, keeps the
live document ids per version of the documents table, and reads the columns
of the ``k`` hits only. Then (quiet machine, p50): the query's embedding 9.9 ms
alone but 13.4 ms beside the full-text search (the two threads took turns at
Python's lock), the full-text search 4.5 ms, the vector scan 3.7 ms after the
embedding, the two table-version checks 0.6 ms each. Now the embedder runs as
one traced graph without that lock (7.6 ms, see ``embedder.QueryGraph``), the
side thread does the full-text search and both version checks while the
query is embedded, and from 50k windows the scan's first pass reads a third
of the bytes (``matrix``). Once the table has ``rag.ann_min_rows`` chunks and
``doctune index`` has built the approximate index, LanceDB's index answers
instead and no matrix is held in memory.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

from doctune.core.errors import UserError
from doctune.core.rag.hits import Hit

if TYPE_CHECKING:  # pragma: no cover
    from doctune.core.project import Project

Mode = Literal["hybrid", "vector", "text"]
COLUMNS = ["chunk_id", "doc_id", "doc_path", "doc_title", "page_start", "page_end", "text"]
RERANK_POOL = 3
# Approximate search: IVF partitions searched per query (of ~122 at 1M chunks) and candidates re-scored exactly per
# result. Measured at 1M clustered chunks on 2 busy cores (recall@10 vs exact, vector search alone): 20 / 2: 0.91 in
# 29 ms; 30 / 2: 0.95 in 48 ms; 40 / 2: 0.97 in 39 ms; 60 / 2: 0.99 in 81 ms. Re-scoring 4x instead of 2x adds nothing.
ANN_NPROBES = 40
ANN_REFINE = 2


RESCAN = "On the Documents page, press Re-scan: it reads the documents again and brings the search index up to date."
ADD_DOCUMENTS = "Add documents on the Documents page (Add files… or Add folder…); the search index is built after them."


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

    def __init__(self, project: Project, *, embedder: str | None = None, reranker: str | None = None) -> None:
        from doctune.core.rag.embedder import load_embedder, load_reranker, resolve
        from doctune.core.rag.index import connect_fresh, current_layout, has_fts, open_table, stored_identity
        from doctune.core.store import DOCUMENTS

        self.project = project
        self.settings = project.config.rag
        self._live: tuple[int | None, set[str]] = (None, set())
        self._state_lock = threading.Lock()
        self._state: tuple[int | None, bool, Any] = (None, False, None)  # (table version, use the index, matrix)
        self._side_thread = ThreadPoolExecutor(1, thread_name_prefix="doctune-search")
        offline = project.config.privacy.offline
        db = connect_fresh(project)
        self.documents = open_table(db, DOCUMENTS)
        self.table = open_table(db)
        if self.table is None or self.table.count_rows() == 0:
            raise self._missing()
        if not has_fts(self.table):  # an index run stopped before its last step
            raise IndexMissing(f"The search index of {project.root} is incomplete.",
                               hint=f"Finish it with: doctune index -p {project.root}", window_hint=RESCAN)
        if not current_layout(self.table):  # one vector per chunk, blind past the embedder's first window
            raise IndexStale(f"The search index of {project.root} was built by an earlier version of DocTune.",
                             hint=f"Rebuild it with: doctune index -p {project.root}", window_hint=RESCAN)
        spec = embedder or self.settings.embedder
        stored = stored_identity(self.table)
        if stored != resolve(spec).identity:
            raise IndexStale(
                f"The search index of {project.root} was built with the embedder {stored}, "
                f"but the project is set to use {spec}.",
                hint=f"Rebuild it with: doctune index -p {project.root}",
                window_hint=RESCAN,
            )
        self.embedder = load_embedder(spec, offline=offline)
        reranker = self.settings.reranker if reranker is None else reranker
        self.reranker = load_reranker(reranker, offline=offline) if reranker else None

    def live_document_ids(self) -> set[str]:
        """Documents stored as ok right now (read fresh: a removal shows at once; re-read only when the documents
        table has a new version)."""
        if self.documents is None:
            return set()
        version = self.documents.version
        if self._live[0] != version:
            rows = self.documents.search().where("status = 'ok'").select(["id"]).limit(None).to_arrow()
            self._live = (version, set(rows.column("id").to_pylist()))
        return self._live[1]

    def _missing(self) -> IndexMissing:
        root = self.project.root
        if not self.live_document_ids():
            return IndexMissing(
                f"The project {root} has no documents to search.",
                hint=f"Add documents with: doctune add FILES... -p {root}, then build the index with: doctune index -p {root}",
                window_hint=ADD_DOCUMENTS,
            )
        return IndexMissing(f"The documents of {root} are not indexed yet.", hint=f"Build the index with: doctune index -p {root}",
                            window_hint=RESCAN)

    # ----- the two searches ------------------------------------------------------------------
    def _vector_source(self) -> tuple[bool, Any]:
        """(whether LanceDB's approximate index answers, else the in-memory matrix) for the table's current version."""
        from doctune.core.rag.index import has_vector_index
        from doctune.core.rag.matrix import WindowMatrix

        with self._state_lock:
            version = self.table.version
            if self._state[0] != version:
                minimum = self.settings.ann_min_rows
                use_index = minimum > 0 and has_vector_index(self.table) and self.table.count_rows() >= minimum
                self._state = (None, False, None)  # drop the old matrix before loading the new one
                self._state = (version, use_index, None if use_index else WindowMatrix.load(self.table, version, COLUMNS))
            return self._state[1], self._state[2]

    def _vector_candidates(self, vector, limit: int, source: tuple[bool, Any]) -> list[dict[str, Any]]:
        """The ``limit`` chunks nearest to ``vector`` (ids, document and cosine score only), from ``source``."""
        use_index, matrix = source
        if use_index:
            data = (self.table.search(vector, vector_column_name="vector").metric("cosine").nprobes(ANN_NPROBES)
                    .refine_factor(ANN_REFINE).limit(limit).with_row_id(True)
                    .select(["chunk_id", "doc_id", "_distance"]).to_arrow())
            return [{"chunk_id": chunk_id, "doc_id": doc_id, "_rowid": row_id, "score": 1.0 - distance}
                    for chunk_id, doc_id, row_id, distance in zip(
                        data.column("chunk_id").to_pylist(), data.column("doc_id").to_pylist(),
                        data.column("_rowid").to_pylist(), data.column("_distance").to_pylist())]
        positions, scores = matrix.top(vector, limit)
        return [{"chunk_id": matrix.chunk_ids[p], "doc_id": matrix.doc_ids[p], "score": float(score)}
                for p, score in zip(positions, scores)]

    def _text_candidates(self, query: str, limit: int) -> list[dict[str, Any]]:
        """The ``limit`` best full-text matches (ids, document and BM25 score only: reading the texts of all of
        them took longer than the search itself at 1M chunks)."""
        data = (self.table.search(query, query_type="fts", fts_columns="text").limit(limit).with_row_id(True)
                .select(["chunk_id", "doc_id", "_score"]).to_arrow())
        return [{"chunk_id": chunk_id, "doc_id": doc_id, "_rowid": row_id, "score": score}
                for chunk_id, doc_id, row_id, score in zip(
                    data.column("chunk_id").to_pylist(), data.column("doc_id").to_pylist(),
                    data.column("_rowid").to_pylist(), data.column("_score").to_pylist())]

    def _with_columns(self, rows: list[dict[str, Any]], matrix) -> list[dict[str, Any]]:
        """``rows`` with every column of ``COLUMNS``: from the in-memory ``matrix`` when it holds them, else read
        from the table by row id (a chunk deleted meanwhile is left out)."""
        found: dict[str, dict[str, Any]] = {}
        positions = [matrix.position.get(row["chunk_id"]) for row in rows] if matrix is not None else []
        in_memory = [position for position in positions if position is not None]
        if in_memory:
            found.update((row["chunk_id"], row) for row in matrix.rows(in_memory))
        in_table = [row["_rowid"] for row in rows if row["chunk_id"] not in found]
        if in_table:
            found.update((row["chunk_id"], row)
                         for row in self.table.take_row_ids(in_table).select(COLUMNS).to_arrow().to_pylist())
        return [{**found[row["chunk_id"]], "score": row["score"]} for row in rows if row["chunk_id"] in found]

    def vector_rows(self, query: str, limit: int) -> list[dict[str, Any]]:
        """The ``limit`` chunks nearest to ``query`` by vector search, with their columns and cosine score."""
        source = self._vector_source()
        return self._with_columns(self._vector_candidates(self.embedder.encode_query(query), limit, source), source[1])

    def text_rows(self, query: str, limit: int) -> list[dict[str, Any]]:
        """The ``limit`` best full-text matches of ``query``, with their columns and BM25 score."""
        return self._with_columns(self._text_candidates(query, limit), self._vector_source()[1])

    # ----- the public search -----------------------------------------------------------------
    def search(self, query: str, k: int | None = None, mode: Mode = "hybrid") -> list[Hit]:
        """The ``k`` best chunks for ``query``, best first."""
        k = k or self.settings.k
        if not query.strip():
            return []
        pool = max(self.settings.candidates, k * RERANK_POOL if self.reranker else k)
        # The query is embedded on this thread while the other reads what needs no query vector: first the live
        # documents and the table's version (and its matrix), then the full-text matches, which may finish after
        # the vector search.
        state = self._side_thread.submit(lambda: (self.live_document_ids(), self._vector_source()))
        text_job = self._side_thread.submit(self._text_candidates, query, pool) if mode in ("hybrid", "text") else None
        try:
            vector_query = self.embedder.encode_query(query) if mode in ("hybrid", "vector") else None
            live, source = state.result()
            vector = self._vector_candidates(vector_query, pool, source) if vector_query is not None else []
        finally:
            text = text_job.result() if text_job is not None else []
        rows: dict[str, dict[str, Any]] = {}
        for row in [*text, *vector]:
            if row["doc_id"] in live:
                rows.setdefault(row["chunk_id"], row)
        if mode == "hybrid":
            fused = rrf_fuse([[r["chunk_id"] for r in vector], [r["chunk_id"] for r in text]], self.settings.rrf_k)
            scored = [(fused[cid], row) for cid, row in rows.items()]
        else:
            scored = [(row["score"], row) for row in rows.values()]
        scored.sort(key=lambda pair: pair[0], reverse=True)
        best = scored[: k * RERANK_POOL] if self.reranker is not None else scored[:k]
        complete = self._with_columns([{**row, "score": score} for score, row in best], source[1])
        if self.reranker is not None:
            return self._rerank(query, complete, k)
        return [_hit(row, row["score"]) for row in complete]

    def _rerank(self, query: str, rows: list[dict[str, Any]], k: int) -> list[Hit]:
        if not rows:
            return []
        scores = self.reranker.predict([(query, row["text"]) for row in rows], show_progress_bar=False)
        ranked = sorted(zip(scores, range(len(rows)), rows), key=lambda item: (-float(item[0]), item[1]))
        return [_hit(row, score) for score, _, row in ranked[:k]]


def search(project: Project, query: str, k: int = 8, mode: Mode = "hybrid") -> list[Hit]:
    """The ``k`` chunks of the project that best match ``query`` (see ``Retriever`` to reuse one for many queries)."""
    return Retriever(project).search(query, k=k, mode=mode)
