"""``doctune status`` answers from a snapshot of the documents table, never a stale one, without loading LanceDB."""
from __future__ import annotations

import json
import subprocess
import sys

from project_helpers import ingest

from doctune.core.documents_status import document_rows, read_snapshot, table_version_on_disk
from doctune.core.store import Store, list_documents


def _write_docs(folder, count):
    folder.mkdir()
    for number in range(count):
        (folder / f"d{number}.md").write_text(f"# Lighthouse {number}\n\nIt stands at cape {number}.\n")
    return folder


def test_a_change_refreshes_the_snapshot_and_status_reads_it_without_lancedb(project, tmp_path):
    ingest(project, [_write_docs(tmp_path / "docs", 3)])
    assert read_snapshot(project) == list_documents(project)
    probe = ("import json, sys\nfrom doctune.core.cli import main\n"
             f"main(['status', '--json', '-p', {str(project.root)!r}])\n"
             "print(json.dumps(sorted(m for m in ('lancedb', 'pyarrow', 'torch') if m in sys.modules)), "
             "file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stderr.strip().splitlines()[-1]) == []
    report = json.loads(result.stdout)
    assert [doc["name"] for doc in report["documents"]] == ["d0.md", "d1.md", "d2.md"] and report["chunks"] == 3


def test_a_write_that_bypassed_the_snapshot_is_seen(project, tmp_path):
    ingest(project, [_write_docs(tmp_path / "docs", 3)])
    before = table_version_on_disk(project.lancedb_dir / "documents.lance")
    Store(project).documents.delete("name = 'd1.md'")  # another process, or an older DocTune, changed the table
    assert table_version_on_disk(project.lancedb_dir / "documents.lance") == before + 1
    assert read_snapshot(project) is None
    assert [row["name"] for row in document_rows(project)] == ["d0.md", "d2.md"]
    assert [row["name"] for row in read_snapshot(project)] == ["d0.md", "d2.md"]  # and a fresh snapshot is kept


def test_a_project_without_documents_has_no_rows(project):
    assert document_rows(project) == []
