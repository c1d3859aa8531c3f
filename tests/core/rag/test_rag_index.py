"""``doctune index``: incremental embedding, removed documents, embedder changes, missing index."""
from __future__ import annotations

import json

import pytest
from project_helpers import ingest
from rag_helpers import index, write_docs

from doctune.core.cli import main
from doctune.core.rag import IndexMissing, IndexStale, NothingToIndex, Retriever
from doctune.core.store import Store, list_chunks

DOCS = {
    "harbour.md": "# Harbour\n\nThe harbour of Draskey freezes every February. Its pier is 212 metres long.\n",
    "mill.md": "# Mill\n\nThe Quintrel mill grinds barley on Thursdays only. Its wheel has 36 paddles.\n",
    "tower.md": "# Tower\n\nThe Osk tower leans eleven degrees to the east and has 400 steps.\n",
}


def _doc_id(project, name: str) -> str:
    return next(row["id"] for row in Store(project).document_rows() if row["name"] == name)


def test_empty_project_says_what_to_do(project):
    with pytest.raises(NothingToIndex) as caught:
        index(project)
    assert f"doctune add FILES... -p {project.root}" in str(caught.value)
    with pytest.raises(IndexMissing) as caught:
        Retriever(project)
    assert "no documents" in str(caught.value) and f"doctune index -p {project.root}" in str(caught.value)


def test_documents_without_index_name_the_index_command(project, tmp_path):
    ingest(project, write_docs(tmp_path / "docs", DOCS))
    with pytest.raises(IndexMissing) as caught:
        Retriever(project)
    assert "not indexed yet" in str(caught.value) and f"doctune index -p {project.root}" in str(caught.value)


def _must_not_load(*_args, **_kwargs):
    raise AssertionError("the embedder was loaded with nothing to embed")


def test_reindex_embeds_only_changed_chunks_and_forgets_removed_documents(project, tmp_path, monkeypatch):
    paths = write_docs(tmp_path / "docs", DOCS)
    ingest(project, paths)
    first, sink = index(project)
    n_chunks = len(list_chunks(project))
    assert (first.embedded, first.removed, first.total) == (n_chunks, 0, n_chunks)
    assert sink.of("progress")[-1]["done"] == n_chunks

    with monkeypatch.context() as patched:  # nothing to embed: the embedder (seconds to load) is never loaded
        patched.setattr("doctune.core.rag.embedder.load_embedder", _must_not_load)
        again, _ = index(project)
    assert (again.embedded, again.removed, again.unchanged) == (0, 0, n_chunks)

    old_mill = _doc_id(project, "mill.md")
    paths[1].write_text("# Mill\n\nThe Quintrel mill now grinds rye on Mondays. Its wheel has 40 paddles.\n")
    ingest(project, [paths[1]])
    mill_chunks = [chunk for chunk in list_chunks(project) if chunk["doc_path"] == str(paths[1].resolve())]
    changed, _ = index(project)
    assert changed.embedded == len(mill_chunks) and changed.removed == len(mill_chunks)
    assert changed.total == n_chunks
    retriever = Retriever(project)
    assert all(hit.doc_id != old_mill for hit in retriever.search("Quintrel mill paddles", k=10))
    assert "rye" in retriever.search("Which grain does the Quintrel mill grind?", k=1)[0].text

    tower = _doc_id(project, "tower.md")
    Store(project).delete_documents([tower])
    assert all(hit.doc_id != tower for hit in retriever.search("Osk tower leans steps", k=10)), "before re-index"
    removed, _ = index(project)
    assert removed.embedded == 0 and removed.removed >= 1
    assert all(hit.doc_id != tower for mode in ("hybrid", "vector", "text")
               for hit in Retriever(project).search("Osk tower leans steps", k=10, mode=mode))


def test_changing_the_embedder_reembeds_everything_and_stale_index_is_refused(project, tmp_path):
    from doctune.core.rag.embedder import bundled_model_dir

    ingest(project, write_docs(tmp_path / "docs", DOCS))
    first, _ = index(project)
    other = str(bundled_model_dir())  # same weights, named as a folder: another embedder identity
    project.config.rag.embedder = other
    project.save()
    with pytest.raises(IndexStale, match="doctune index"):
        Retriever(project)
    second, sink = index(project)
    assert second.rebuilt and second.embedded == first.total and second.embedder == f"folder:{other}"
    assert any("embedder changed" in event["message"] for event in sink.of("log"))
    assert Retriever(project).search("harbour pier length", k=1)[0].text.startswith("Harbour")


def test_cli_index_and_search(project, tmp_path, capsys):
    ingest(project, write_docs(tmp_path / "docs", DOCS))
    assert main(["index", "-p", str(project.root), "--events", "jsonl"]) == 0
    done = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert done["event"] == "done" and done["embedded"] == done["total"] > 0
    assert main(["search", "How many steps has the Osk tower?", "-p", str(project.root), "-k", "2", "--events", "jsonl"]) == 0
    hits = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["hits"]
    assert len(hits) == 2 and "400 steps" in hits[0]["text"] and hits[0]["doc_title"]
    assert main(["search", "tower", "-p", str(project.root)]) == 0
    assert "Osk tower" in capsys.readouterr().out


def test_cancelled_index_keeps_what_was_embedded_and_resumes(project, tmp_path, monkeypatch):
    from doctune.core.events import Cancelled, CancelToken, Events, ProgressTracker
    from doctune.core.rag import IndexParams, run

    monkeypatch.setattr(ProgressTracker, "MIN_INTERVAL", 0)  # every batch reports, so the cancel lands after the first

    ingest(project, write_docs(tmp_path / "docs", DOCS), chunk_tokens=32, chunk_overlap=0)
    total = len(list_chunks(project))
    assert total >= 3
    cancel = CancelToken()

    def cancel_after_first_batch(event):
        if event["event"] == "progress" and event["done"] >= 1:
            cancel.cancel()

    with pytest.raises(Cancelled):
        run(IndexParams(project_dir=project.root, batch_size=1), events=Events(cancel_after_first_batch), cancel=cancel)
    with pytest.raises(IndexMissing, match="incomplete"):
        Retriever(project)
    resumed, _ = index(project, batch_size=1)
    assert 0 < resumed.embedded < total and resumed.total == total
