"""Hostile files and a hostile disk: every file gets a clear reason of its own, and nothing hangs or leaks space."""
from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import pytest
from ingest_samples import LOREM, make_docx, make_epub
from small_disk import fill, resize, small_disk

from doctune.core.events import CancelToken, Events, RecordingSink
from doctune.core.ingest import IngestParams, run
from doctune.core.project import Project
from doctune.core.store import Store, list_documents


def ingest(project, *paths, sink=None):
    params = IngestParams(project_dir=project.root, paths=list(paths))
    return run(params, events=Events(sink if sink is not None else RecordingSink(), "ingest"), cancel=CancelToken())


def rows_by_name(project):
    return {row["name"]: row for row in list_documents(project)}


def _big_text(path: Path, megabytes: float) -> Path:
    """Text that stores about as large as it is (random words: LanceDB cannot compress it away)."""
    import random

    rng = random.Random(0)
    letters = "abcdefghijklmnopqrstuvwxyz"
    paragraphs, size = [], 0
    while size < megabytes * 1_000_000:
        words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(80)]
        paragraphs.append(" ".join(words).capitalize() + ".")
        size += len(paragraphs[-1]) + 2
    path.write_text("\n\n".join(paragraphs), encoding="utf-8")
    return path


def _replace_member(package: Path, member: str, data: bytes) -> Path:
    """``package`` with ``member`` replaced by ``data`` (deflated, as Word and e-book tools write them)."""
    source = package.with_suffix(".orig")
    package.rename(source)
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(package, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            new.writestr(info.filename, data if info.filename == member else old.read(info.filename))
    source.unlink()
    return package


def _bomb_docx(path: Path, inflated_mb: int) -> Path:
    make_docx(path)
    with zipfile.ZipFile(path) as package:
        xml = package.read("word/document.xml")
    padding = b" " * (inflated_mb * 1_000_000)
    return _replace_member(path, "word/document.xml", xml.replace(b"<w:body>", b"<w:body>" + padding, 1))


def _bomb_epub(path: Path, inflated_mb: int) -> Path:
    make_epub(path)
    with zipfile.ZipFile(path) as package:
        chapter = next(name for name in package.namelist() if name.endswith(".xhtml") and "nav" not in name)
        xml = package.read(chapter)
    padding = b"<p>x</p>" * (inflated_mb * 125_000)
    return _replace_member(path, chapter, xml.replace(b"</body>", padding + b"</body>", 1))


@pytest.mark.parametrize("make", [_bomb_docx, _bomb_epub], ids=["docx", "epub"])
def test_zip_bombs_are_refused_before_they_inflate(project, tmp_path, make):
    suffix = "docx" if make is _bomb_docx else "epub"
    bomb = make(tmp_path / f"bomb.{suffix}", inflated_mb=40)
    assert bomb.stat().st_size < 1_000_000
    result = ingest(project, bomb)
    row = rows_by_name(project)[bomb.name]
    assert result.outcomes[0].status == "error" and row["status"] == "error"
    assert "zip bomb" in row["error"] and "times" in row["error"] and row["hint"]


def test_a_junk_docx_and_a_billion_laughs_docx_have_plain_reasons(project, tmp_path):
    junk = tmp_path / "junk.docx"
    with zipfile.ZipFile(junk, "w") as package:
        package.writestr("hello.txt", "not a Word document")
    laughs = make_docx(tmp_path / "laughs.docx")
    entities = "".join(f'<!ENTITY l{n} "&l{n - 1};&l{n - 1};&l{n - 1};&l{n - 1};&l{n - 1};">' for n in range(1, 10))
    xml = (b'<?xml version="1.0"?><!DOCTYPE w:document [<!ENTITY l0 "ha">' + entities.encode() + b']>'
           b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r>'
           b'<w:t>&l9;</w:t></w:r></w:p></w:body></w:document>')
    _replace_member(laughs, "word/document.xml", xml)
    ingest(project, junk, laughs)
    rows = rows_by_name(project)
    assert rows["junk.docx"]["status"] == "error" and "damaged" in rows["junk.docx"]["error"]
    assert "lacks the part [Content_Types].xml" in rows["junk.docx"]["error"]
    assert rows["laughs.docx"]["status"] == "error"
    for row in rows.values():
        assert "KeyError" not in row["error"] and "TypeError" not in row["error"] and row["hint"]
        assert "ha" * 100 not in row["error"]


def test_a_named_pipe_is_not_read_and_not_called_empty(project, tmp_path):
    fifo = tmp_path / "x.txt"
    os.mkfifo(fifo)
    result = ingest(project, fifo)  # reading it would block forever
    row = rows_by_name(project)["x.txt"]
    assert result.outcomes[0].status == "error" and "named pipe" in row["error"] and "empty" not in row["error"]


def test_deeply_nested_html_is_read(project, tmp_path):
    page = tmp_path / "deep.html"
    page.write_text("<html><body>" + "<div>" * 50_000 + "<p>The lighthouse keeper rows out at dawn.</p>"
                    + "</div>" * 50_000 + "</body></html>", encoding="utf-8")
    result = ingest(project, page)
    row = rows_by_name(project)["deep.html"]
    assert result.outcomes[0].status == "added", row["error"]
    assert row["status"] == "ok" and row["chunks"] == 1


def test_dangling_links_say_what_they_point_to(project, tmp_path):
    for name in ("notes", "notes.txt"):
        (tmp_path / name).symlink_to(tmp_path / "gone" / "original.txt")
    ingest(project, tmp_path / "notes", tmp_path / "notes.txt")
    rows = rows_by_name(project)
    for name in ("notes", "notes.txt"):
        assert rows[name]["status"] == "error"
        assert "link to" in rows[name]["error"] and "does not exist" in rows[name]["error"]
        assert "extension" not in rows[name]["error"]


def test_a_failed_file_keeps_its_own_row_when_its_bytes_match_another_document(project, tmp_path):
    text = "The ferry Grey Tern sails to Ossenby twice a week.\n\n" + LOREM
    (tmp_path / "notes.txt").write_text(text, encoding="utf-8")
    (tmp_path / "notes.docx").write_text(text, encoding="utf-8")  # a text file given the wrong extension
    ingest(project, tmp_path)
    assert rows_by_name(project)["notes.docx"]["status"] == "error"
    again = ingest(project, tmp_path)
    rows = rows_by_name(project)
    assert rows["notes.docx"]["status"] == "error" and "not a valid Word document" in rows["notes.docx"]["error"]
    assert rows["notes.txt"]["status"] == "ok"
    assert sorted(outcome.status for outcome in again.outcomes) == ["error", "unchanged"]


def test_removing_documents_gives_the_disk_space_back(tmp_path):
    import sys
    from subprocess import run as run_process

    from doctune.core.store import folder_bytes

    project = Project.create(tmp_path / "p")
    big = _big_text(tmp_path / "big.txt", 3)
    ingest(project, big)
    stored = folder_bytes(project.lancedb_dir)
    assert stored > 2_000_000
    removed = run_process([sys.executable, "-m", "doctune.core", "remove", str(big), "-p", str(project.root)],
                          capture_output=True, text=True, timeout=300)
    assert removed.returncode == 0, removed.stderr
    assert "of disk space given back" in removed.stderr
    assert folder_bytes(project.lancedb_dir) < stored / 4
    assert Store(project).chunks.count_rows() == 0


def test_a_full_disk_stops_the_add_in_plain_words_and_the_retry_works(tmp_path):
    from doctune.core.ingest.step import IngestWriteError
    from doctune.core.store import folder_bytes

    big = _big_text(tmp_path / "big.txt", 3)
    small = tmp_path / "small.txt"
    small.write_text("A short note about the harbour.", encoding="utf-8")
    with small_disk(tmp_path / "disk", size_kb=6000) as disk:
        project = Project.create(disk / "p")
        Store(project)
        filler = fill(disk, leave_bytes=1_500_000)
        with pytest.raises(IngestWriteError) as caught:
            ingest(project, small, big)
        message = str(caught.value)
        assert f"the disk is full at {project.lancedb_dir}; free" in message and "MB." in message
        assert "usual program" not in message
        assert not [row for row in list_documents(project) if row["name"] == "big.txt"]
        left = folder_bytes(project.lancedb_dir)
        assert left < 1_000_000, left  # the half-written data was given back
        filler.unlink()
        resize(disk, 40_000)
        result = ingest(project, small, big)
        assert {outcome.status for outcome in result.outcomes} <= {"added", "unchanged"}
        rows = rows_by_name(project)
        assert rows["big.txt"]["status"] == "ok" and rows["small.txt"]["status"] == "ok"
        shutil.rmtree(project.root)


def test_a_full_disk_in_add_is_a_message_not_a_traceback(tmp_path):
    import subprocess
    import sys

    big = _big_text(tmp_path / "big.txt", 3)
    with small_disk(tmp_path / "disk", size_kb=6000) as disk:
        project = Project.create(disk / "p")
        Store(project)
        fill(disk, leave_bytes=1_500_000)
        added = subprocess.run([sys.executable, "-m", "doctune.core", "add", str(big), "-p", str(project.root)],
                               capture_output=True, text=True, timeout=300)
        assert added.returncode == 1 and "Traceback" not in added.stderr, added.stderr
        assert "the disk is full at" in added.stderr
