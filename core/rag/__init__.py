"""Retrieval: chunk embeddings and a full-text index in LanceDB, hybrid search.

Public surface: ``run(IndexParams(project_dir=...), events=, cancel=) -> IndexResult``
(``doctune index``), ``search(project, query, k=8) -> list[Hit]`` and
``Retriever`` (one loaded index for many queries), ``Hit``; errors
``IndexMissing``, ``IndexStale``, ``NothingToIndex``, ``EmbedderUnavailable``.
Heavy libraries load only when these are called.
"""
from doctune.core.rag.embedder import EmbedderUnavailable
from doctune.core.rag.hits import Hit
from doctune.core.rag.search import IndexMissing, IndexStale, Retriever, rrf_fuse, search
from doctune.core.rag.step import IndexParams, IndexResult, NothingToIndex, run

__all__ = [
    "run", "IndexParams", "IndexResult", "search", "Retriever", "Hit", "rrf_fuse", "IndexMissing", "IndexStale",
    "NothingToIndex", "EmbedderUnavailable",
]
