"""Search from memory: the same results as LanceDB's exact scan, never stale, and the approximate index past
``rag.ann_min_rows`` (built by ``doctune index`` with progress)."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from project_helpers import ingest
from rag_helpers import index, write_docs

from doctune.core.events import CancelToken, Events, RecordingSink
from doctune.core.rag import Retriever
from doctune.core.store import Store

DOCS = {
    "harbour.md": "# Harbour\n\nThe harbour of Draskey freezes every February. Its pier is 212 metres long.\n",
    "mill.md": "# Mill\n\nThe Quintrel mill grinds barley on Thursdays only. Its wheel has 36 paddles.\n",
}
QUESTIONS = ["Who first charted the Vellmora Archipelago?", "What bird appears on the flag?",
             "Which festival is held in winter?", "How long is the bridge?"]


def lance_exact(retriever: Retriever, vector, limit: int) -> list[tuple[str, float]]:
    rows = (retriever.table.search(vector, vector_column_name="vector").metric("cosine").bypass_vector_index()
            .limit(limit).select(["chunk_id", "_distance"]).to_arrow().to_pylist())
    return [(row["chunk_id"], 1.0 - row["_distance"]) for row in rows]


@pytest.mark.parametrize("half", ["bfloat16", "float16"])
def test_memory_search_returns_lancedbs_exact_results_and_scores(sample_project, monkeypatch, half):
    """Whichever half type the processor scans faster, the results and scores are those of a float32 scan."""
    import torch

    from doctune.core.rag import matrix

    monkeypatch.setattr(matrix, "fastest_half", lambda: getattr(torch, half))
    retriever = Retriever(sample_project)
    assert retriever._vector_source()[1].high.dtype == getattr(torch, half)
    for question in QUESTIONS:
        vector = retriever.embedder.encode_query(question)
        candidates = retriever._vector_candidates(vector, 20, retriever._vector_source())
        ours = [(row["chunk_id"], row["score"]) for row in candidates]
        exact = lance_exact(retriever, vector, 20)
        assert [chunk_id for chunk_id, _ in ours] == [chunk_id for chunk_id, _ in exact], question
        assert [score for _, score in ours] == pytest.approx([score for _, score in exact], abs=1e-5)
    hits = retriever.search(QUESTIONS[0], k=5, mode="vector")
    assert [hit.chunk_id for hit in hits] == [chunk_id for chunk_id, _ in lance_exact(
        retriever, retriever.embedder.encode_query(QUESTIONS[0]), 5)]
    assert all(hit.text and hit.doc_title and hit.doc_path for hit in hits)


def test_a_retriever_sees_chunks_added_and_removed_after_it_was_made(project, tmp_path):
    paths = write_docs(tmp_path / "docs", DOCS)
    ingest(project, paths[:1])
    index(project)
    retriever = Retriever(project)
    assert "Draskey" in retriever.search("harbour pier", k=1, mode="vector")[0].text

    ingest(project, paths[1:])
    index(project)
    for mode in ("vector", "hybrid"):
        assert "Quintrel" in retriever.search("Which grain does the mill grind?", k=1, mode=mode)[0].text

    harbour = next(row["id"] for row in Store(project).document_rows() if row["name"] == "harbour.md")
    Store(project).delete_documents([harbour])
    index(project)
    for mode in ("vector", "text", "hybrid"):
        assert all(hit.doc_id != harbour for hit in retriever.search("harbour pier Draskey", k=5, mode=mode))
    assert len(retriever._vector_source()[1]) == retriever.table.count_rows()


# ----- the approximate index ---------------------------------------------------------------------

ROWS = 3000


@pytest.fixture(scope="module")
def large_project(tmp_path_factory):
    """``ROWS`` chunks with clustered synthetic vectors (embedding thousands of texts takes too long for a test);
    queries are embedded for real."""
    import pyarrow as pa

    from doctune.core.project import Project
    from doctune.core.rag.embedder import BUNDLED, load_embedder
    from doctune.core.rag.index import TABLE, refresh_fts, table_schema, text_sha

    embedder = load_embedder(BUNDLED)
    project = Project.create(tmp_path_factory.mktemp("large") / "project")
    store = Store(project)
    doc_ids = [hashlib.sha256(f"doc {n}".encode()).hexdigest() for n in range(ROWS // 100)]
    store.add_documents([{"id": doc_id, "path": f"/docs/{n}.md", "name": f"{n}.md", "status": "ok", "chunks": 100}
                         for n, doc_id in enumerate(doc_ids)])
    topics = embedder.encode([f"Notes on subject number {n}: ferries, mills, towers and harbours." for n in range(60)])
    generator = np.random.default_rng(0)
    vectors = topics[generator.integers(0, len(topics), ROWS)]
    vectors += generator.standard_normal(vectors.shape, dtype=np.float32) / np.sqrt(embedder.dim)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    texts = [f"Chunk {n} of document {n // 100} mentions the number {n * 7}." for n in range(ROWS)]
    rows = [{"chunk_id": f"c{n:05d}", "doc_id": doc_ids[n // 100], "doc_path": f"/docs/{n // 100}.md",
             "doc_title": f"Doc {n // 100}", "ordinal": n % 100, "page_start": None, "page_end": None,
             "text": texts[n], "text_sha": text_sha(texts[n]), "embedder": embedder.identity, "vector": [vectors[n]]}
            for n in range(ROWS)]
    table = store.db.create_table(TABLE, pa.Table.from_pylist(rows, schema=table_schema(embedder.dim)))
    refresh_fts(table)
    return project, vectors


def _exact_top(vectors, query, k: int) -> list[str]:
    return [f"c{n:05d}" for n in np.argsort(-(vectors @ query))[:k]]


def test_the_index_is_built_past_ann_min_rows_with_progress_and_answers_searches(large_project):
    from doctune.core.rag.index import has_vector_index, refresh_vector_index, vector_index_due

    project, vectors = large_project
    table = Retriever(project).table
    assert not refresh_vector_index(table, 0) and not refresh_vector_index(table, ROWS + 1)  # 0: never; too few
    exact = Retriever(project)  # no index yet: the exact scan from memory
    queries = ["ferries and harbours", "subject number 12", "mills and towers", "notes on subject 40"]
    for query in queries:
        assert [row["chunk_id"] for row in exact.vector_rows(query, 10)] == \
            _exact_top(vectors, exact.embedder.encode_query(query), 10)

    sink = RecordingSink()
    assert refresh_vector_index(table, ROWS, Events(sink), CancelToken())
    assert has_vector_index(table) and not vector_index_due(table, ROWS)
    progress = [event for event in sink.of("progress") if event["stage"] == "index.vectors"]
    assert progress and progress[-1]["done"] == progress[-1]["total"] and progress[-1]["unit"] == "s"

    project.config.rag.ann_min_rows = ROWS
    project.save()
    approximate = Retriever(project)
    assert approximate._vector_source() == (True, None)  # the index answers; no matrix in memory
    recall = np.mean([len(set(row["chunk_id"] for row in approximate.vector_rows(query, 10))
                          & set(_exact_top(vectors, approximate.embedder.encode_query(query), 10))) / 10
                      for query in queries])
    assert recall >= 0.9
    hits = approximate.search("subject number 12", k=5)
    assert len(hits) == 5 and all(hit.text and hit.doc_title for hit in hits)


def test_doctune_index_builds_the_vector_index_once_the_project_has_ann_min_rows_chunks(project, tmp_path):
    import shutil

    from doctune.core.rag.index import has_vector_index
    from doctune.core.resources import resource_path
    from doctune.core.store import list_chunks

    docs = tmp_path / "docs"
    docs.mkdir()
    for source in sorted(resource_path("sample/docs").glob("*.md")):
        shutil.copy(source, docs / source.name)
    ingest(project, [docs], chunk_tokens=96, chunk_overlap=24)
    chunks = len(list_chunks(project))
    project.config.rag.ann_min_rows = chunks + 1
    project.save()
    index(project)
    assert not has_vector_index(Retriever(project).table)  # one chunk short: exact search only

    project.config.rag.ann_min_rows = chunks
    project.save()
    result, sink = index(project)
    assert result.embedded == 0 and any("approximate vector index" in event["message"] for event in sink.of("log"))
    progress = [event for event in sink.of("progress") if event["stage"] == "index.vectors"]
    assert progress and progress[-1]["done"] == progress[-1]["total"]
    retriever = Retriever(project)
    assert has_vector_index(retriever.table) and retriever._vector_source()[0] is True
    hits = retriever.search("Who first charted the Vellmora Archipelago?", k=3)
    assert hits[0].doc_path.endswith("01-vellmora-archipelago.md")
