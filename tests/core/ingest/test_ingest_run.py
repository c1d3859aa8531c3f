"""``doctune.core.ingest.run`` against a real project and real LanceDB tables."""
from __future__ import annotations

import os

import pytest
from ingest_samples import LOREM, make_bad_folder, make_good_folder, make_pdf

from doctune.core.events import Cancelled, CancelToken, Events, RecordingSink
from doctune.core.ingest import IngestParams, run
from doctune.core.store import Store, chunk_id, list_chunks, list_documents


def ingest(project, *paths, sink=None, cancel=None, **options):
    sink = sink if sink is not None else RecordingSink()
    params = IngestParams(project_dir=project.root, paths=list(paths), **options)
    return run(params, events=Events(sink, "ingest"), cancel=cancel or CancelToken())


def rows_by_name(project):
    return {row["name"]: row for row in list_documents(project)}


def test_every_format_is_stored_with_chunks(project, tmp_path):
    files = make_good_folder(tmp_path / "docs")
    sink = RecordingSink()
    result = ingest(project, tmp_path / "docs", sink=sink)
    assert [outcome.status for outcome in result.outcomes] == ["added"] * 6
    documents = rows_by_name(project)
    assert set(documents) == set(files)
    assert all(row["status"] == "ok" and row["chunks"] >= 1 for row in documents.values())
    assert documents["report.pdf"]["pages"] == 3 and documents["notes.md"]["pages"] is None
    assert {row["format"] for row in documents.values()} == {"pdf", "docx", "epub", "html", "markdown", "text"}

    chunks = list_chunks(project)
    assert len(chunks) == sum(row["chunks"] for row in documents.values())
    by_doc: dict[str, list[dict]] = {}
    for chunk in chunks:
        by_doc.setdefault(chunk["doc_id"], []).append(chunk)
    for row in documents.values():
        ordered = by_doc[row["id"]]
        assert [chunk["ordinal"] for chunk in ordered] == list(range(row["chunks"]))
        assert [chunk["id"] for chunk in ordered] == [chunk_id(row["id"], n) for n in range(row["chunks"])]
        assert all(chunk["doc_path"] == row["path"] and chunk["n_tokens"] > 0 for chunk in ordered)
    pdf = by_doc[documents["report.pdf"]["id"]][0]
    assert (pdf["page_start"], pdf["page_end"]) == (1, 3) and pdf["doc_title"] == "Valdoria Report"
    assert "kept their ledgers in the counting house" in pdf["text"]
    docx = by_doc[documents["rules.docx"]["id"]][0]
    assert docx["heading_path"] == "Harbour Rules" and "Galley | 9 marks" in docx["text"]
    assert docx["page_start"] is None and docx["char_start"] == 0

    progress = [event for event in sink.of("progress") if event["stage"] == "ingest"]
    assert progress[-1]["done"] == progress[-1]["total"] == 6 and progress[-1]["unit"] == "files"


def test_adding_unchanged_files_again_writes_nothing(project, tmp_path):
    make_good_folder(tmp_path / "docs")
    ingest(project, tmp_path / "docs")
    store = Store(project)
    versions = (store.documents.version, store.chunks.version)
    before = list_chunks(project)
    result = ingest(project, tmp_path / "docs", tmp_path / "docs" / "notes.md")
    assert [outcome.status for outcome in result.outcomes] == ["unchanged"] * 6
    store = Store(project)
    assert (store.documents.version, store.chunks.version) == versions
    assert list_chunks(project) == before


def test_a_changed_file_replaces_its_chunks(project, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("The old harbour had wooden piers.\n\nThey rotted.", encoding="utf-8")
    first = ingest(project, path).outcomes[0]
    path.write_text("The new harbour has granite piers.", encoding="utf-8")
    second = ingest(project, path).outcomes[0]
    assert second.status == "replaced" and second.doc_id != first.doc_id
    documents = list_documents(project)
    assert [(row["path"], row["id"]) for row in documents] == [(str(path), second.doc_id)]
    assert [chunk["text"] for chunk in list_chunks(project)] == ["The new harbour has granite piers."]
    assert Store(project).chunks.count_rows() == 1


def test_the_same_content_under_another_name_is_not_stored_twice(project, tmp_path):
    (tmp_path / "a.txt").write_text(LOREM, encoding="utf-8")
    (tmp_path / "copy.txt").write_text(LOREM, encoding="utf-8")
    result = ingest(project, tmp_path / "a.txt", tmp_path / "copy.txt")
    assert [outcome.status for outcome in result.outcomes] == ["added", "unchanged"]
    assert "same content as" in result.outcomes[1].note
    assert len(list_documents(project)) == 1


@pytest.mark.parametrize("kind, reason", [
    ("corrupt", "damaged or not a PDF"),
    ("encrypted", "protected by a password"),
    ("empty", "the file is empty"),
    ("binary", "binary data"),
    ("unsupported", "cannot read '.pptx' files"),
    ("docx", "not a valid Word document (.docx)"),
])
def test_a_bad_file_gets_an_error_row_and_the_others_still_ingest(project, tmp_path, kind, reason):
    good = make_pdf(tmp_path / "good.pdf", ["The quay was rebuilt in granite after the fire."], running_header=None)
    bad_files = make_bad_folder(tmp_path / "bad", good)
    bad_files["docx"] = tmp_path / "bad" / "broken.docx"
    bad_files["docx"].write_bytes(b"PK\x03\x04 a zip header, then nothing")
    bad = bad_files[kind]
    sink = RecordingSink()
    result = ingest(project, good, bad, sink=sink)
    assert [outcome.status for outcome in result.outcomes] == ["added", "error"]
    documents = rows_by_name(project)
    assert documents["good.pdf"]["status"] == "ok" and documents["good.pdf"]["chunks"] == 1
    failed = documents[bad.name]
    assert failed["status"] == "error" and reason in failed["error"] and failed["hint"]
    assert failed["chunks"] == 0 and Store(project).chunks.count_rows(f"doc_id = '{failed['id']}'") == 0
    errors = sink.of("error")
    assert len(errors) == 1 and errors[0]["path"] == str(bad) and errors[0]["hint"] == failed["hint"]
    again = ingest(project, bad)
    assert again.outcomes[0].status == "error" and len(list_documents(project)) == 2


def test_a_file_that_vanishes_during_the_run(project, tmp_path):
    first, doomed = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("First file about the guild.", encoding="utf-8")
    doomed.write_text("This file is deleted while the run is busy with the first.", encoding="utf-8")

    def delete_doomed_once_started(event):
        if event["event"] == "progress" and doomed.exists():
            doomed.unlink()

    result = ingest(project, first, doomed, sink=delete_doomed_once_started)
    assert [outcome.status for outcome in result.outcomes] == ["added", "error"]
    assert "disappeared" in rows_by_name(project)["b.txt"]["error"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode; "
                    "test_ingest_cli.py::test_an_unreadable_file_is_reported covers it in a process without the override")
def test_an_unreadable_file(project, tmp_path):
    locked = tmp_path / "locked.txt"
    locked.write_text("secret", encoding="utf-8")
    locked.chmod(0)
    try:
        result = ingest(project, locked)
    finally:
        locked.chmod(0o600)
    assert result.outcomes[0].status == "error"
    assert "no permission" in rows_by_name(project)["locked.txt"]["error"]


def test_cancel_between_files_keeps_finished_files_only(project, tmp_path):
    for index in range(4):
        (tmp_path / f"{index}.txt").write_text(f"File {index}. " + LOREM, encoding="utf-8")
    cancel = CancelToken()

    def cancel_after_the_second_file(event):
        if event["event"] == "progress" and event["done"] == 2:
            cancel.cancel()

    with pytest.raises(Cancelled):
        ingest(project, tmp_path, sink=cancel_after_the_second_file, cancel=cancel)
    assert sorted(rows_by_name(project)) == ["0.txt", "1.txt"]
    assert Store(project).chunks.count_rows() == len(list_chunks(project)) == 2
    result = ingest(project, tmp_path)
    assert [outcome.status for outcome in result.outcomes] == ["unchanged", "unchanged", "added", "added"]


def test_chunks_left_by_a_crash_are_ignored_then_removed(project, tmp_path):
    store = Store(project)
    store.add_chunks([{"id": "dead-00000", "doc_id": "dead", "ordinal": 0, "text": "half written"}])
    assert list_chunks(project) == []
    (tmp_path / "a.txt").write_text("A real document.", encoding="utf-8")
    ingest(project, tmp_path / "a.txt")
    assert Store(project).chunks.count_rows("doc_id = 'dead'") == 0


def test_chunk_settings_come_from_the_project(project, tmp_path):
    (tmp_path / "long.txt").write_text("\n\n".join([LOREM] * 40), encoding="utf-8")
    project.config.ingest.chunk_tokens = 64
    project.config.ingest.chunk_overlap = 8
    project.save()
    small = ingest(project, tmp_path / "long.txt").outcomes[0].chunks
    assert small > 20
    assert max(chunk["n_tokens"] for chunk in list_chunks(project)) <= 64


def test_only_one_writer_at_a_time(project, tmp_path):
    from doctune.core.store import StoreBusy, writing

    (tmp_path / "a.txt").write_text("Some text.", encoding="utf-8")
    with writing(project):
        with pytest.raises(StoreBusy, match="Another DocTune command"):
            ingest(project, tmp_path / "a.txt")
    assert ingest(project, tmp_path / "a.txt").outcomes[0].status == "added"


def test_a_file_that_became_unreadable_loses_its_old_chunks(project, tmp_path):
    path = tmp_path / "report.pdf"
    make_pdf(path, ["The quay was rebuilt in granite after the fire."], running_header=None)
    ingest(project, path)
    path.write_bytes(b"%PDF-1.7\n garbage")
    assert ingest(project, path).outcomes[0].status == "error"
    [row] = list_documents(project)
    assert row["status"] == "error" and list_chunks(project) == [] and Store(project).chunks.count_rows() == 0
