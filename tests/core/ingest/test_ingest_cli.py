"""``doctune add / remove / status`` end to end, each in a real child process."""
from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from ingest_samples import LOREM, make_bad_folder, make_good_folder

from doctune.core.project import Project
from doctune.core.store import Store, list_chunks, list_documents

PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


def without_permission_override() -> None:
    """Run as root but without the capabilities that let root read any file (a real EACCES then)."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def command(*args: str, **kwargs) -> list[str]:
    return [sys.executable, "-m", "doctune.core", *args]


def doctune(*args: str, preexec_fn=None) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), capture_output=True, text=True, timeout=300, preexec_fn=preexec_fn,
                          env={**os.environ, "COLUMNS": "200"})


def status_json(root: Path) -> dict:
    result = doctune("status", "-p", str(root), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_good_and_bad_files_together_exit_2_and_show_in_status(tmp_path):
    root = tmp_path / "p"
    assert doctune("new", str(root)).returncode == 0
    inbox = tmp_path / "inbox"
    good = make_good_folder(inbox)
    bad = make_bad_folder(inbox, good["report.pdf"])
    locked = inbox / "locked.txt"
    locked.write_text("private notes", encoding="utf-8")
    locked.chmod(0)

    added = doctune("add", str(inbox), "-p", str(root), preexec_fn=without_permission_override)
    assert added.returncode == 2, added.stderr
    assert "6 file(s) could not be added" in added.stdout and "no permission" in added.stdout

    report = status_json(root)
    assert report["project"] == str(root)
    documents = {Path(doc["path"]).name: doc for doc in report["documents"]}
    assert set(documents) == set(good) | {path.name for path in bad.values()} | {"locked.txt"}
    for name in good:
        assert documents[name]["status"] == "ok" and documents[name]["chunks"] > 0 and documents[name]["error"] is None
    for name in [path.name for path in bad.values()] + ["locked.txt"]:
        assert documents[name]["status"] == "error" and documents[name]["error"] and documents[name]["chunks"] == 0
    assert documents["report.pdf"]["pages"] == 3
    assert report["chunks"] == sum(doc["chunks"] for doc in documents.values()) == len(list_chunks(Project.open(root)))

    again = subprocess.run(command("--events", "jsonl", "add", str(inbox / "corrupt.pdf"), str(inbox / "notes.md"),
                                   "-p", str(root)), capture_output=True, text=True, timeout=300)
    events = [json.loads(line) for line in again.stdout.splitlines()]
    errors = [event for event in events if event["event"] == "error"]
    assert again.returncode == 2 and len(errors) == 1
    assert errors[0]["path"] == str(inbox / "corrupt.pdf") and errors[0]["hint"]
    assert events[-1]["event"] == "done" and events[-1]["unchanged"] == 1 and events[-1]["failed"] == 1


def test_an_unreadable_file_is_reported(tmp_path):
    root = tmp_path / "p"
    Project.create(root)
    locked = tmp_path / "locked.md"
    locked.write_text("# Secret\n\nplans", encoding="utf-8")
    locked.chmod(0)
    result = doctune("add", str(locked), "-p", str(root), preexec_fn=without_permission_override)
    assert result.returncode == 2
    [document] = status_json(root)["documents"]
    assert document["status"] == "error" and "no permission" in document["error"] and "chmod" in document["hint"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_between_files_with_nothing_partial(tmp_path, signum):
    root = tmp_path / "p"
    Project.create(root)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for index in range(30):
        (inbox / f"{index:02d}.txt").write_text(f"File {index}.\n\n" + "\n\n".join([LOREM] * 400), encoding="utf-8")
    process = subprocess.Popen(command("--events", "jsonl", "add", str(inbox), "-p", str(root)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in process.stdout:
        lines.append(json.loads(line))
        if lines[-1]["event"] == "progress" and lines[-1].get("done", 0) >= 2:
            process.send_signal(signum)
            break
    rest, stderr = process.communicate(timeout=120)
    lines += [json.loads(line) for line in rest.splitlines()]
    assert process.returncode == 130, stderr
    assert lines[-1]["event"] == "cancelled"

    project = Project.open(root)
    documents = list_documents(project)
    assert 2 <= len(documents) < 30 and all(doc["status"] == "ok" for doc in documents)
    stored = Store(project).chunks.count_rows()
    assert stored == sum(doc["chunks"] for doc in documents) == len(list_chunks(project))

    finished = doctune("add", str(inbox), "-p", str(root))
    assert finished.returncode == 0, finished.stderr
    documents = list_documents(project)
    assert len(documents) == 30
    chunk_ids = [chunk["id"] for chunk in list_chunks(project)]
    assert len(chunk_ids) == len(set(chunk_ids)) == sum(doc["chunks"] for doc in documents)


def test_remove_by_path_name_or_id(tmp_path):
    root = tmp_path / "p"
    Project.create(root)
    for name in ("a.txt", "b.txt", "c.txt"):
        (tmp_path / name).write_text(f"Document {name} about the harbour.", encoding="utf-8")
    assert doctune("add", str(tmp_path / "a.txt"), str(tmp_path / "b.txt"), str(tmp_path / "c.txt"),
                   "-p", str(root)).returncode == 0
    ids = {Path(doc["path"]).name: doc["id"] for doc in status_json(root)["documents"]}
    result = doctune("remove", str(tmp_path / "a.txt"), "b.txt", ids["c.txt"][:10], "-p", str(root))
    assert result.returncode == 0, result.stderr
    report = status_json(root)
    assert report["documents"] == [] and report["chunks"] == 0
    assert Store(Project.open(root)).chunks.count_rows() == 0


def test_removing_every_document_needs_all_or_yes(tmp_path):
    root = tmp_path / "p"
    Project.create(root)
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    for name in ("a.txt", "b.txt", "sub/c.txt"):
        (docs / name).write_text(f"Document {name} about the harbour.", encoding="utf-8")
    assert doctune("add", str(docs), "-p", str(root)).returncode == 0
    for everything in ("/", str(docs), str(tmp_path)):
        refused = doctune("remove", everything, "-p", str(root))
        assert refused.returncode == 1 and "every document of the project (3)" in refused.stderr, refused.stderr
        assert "--yes" in refused.stderr and "Traceback" not in refused.stderr
    nothing = doctune("remove", "-p", str(root))
    assert nothing.returncode == 1 and "--all" in nothing.stderr
    assert len(status_json(root)["documents"]) == 3
    narrower = doctune("remove", str(docs / "sub"), "-p", str(root))  # a folder with some of them: no question
    assert narrower.returncode == 0 and len(status_json(root)["documents"]) == 2
    confirmed = doctune("remove", str(docs), "--yes", "-p", str(root))
    assert confirmed.returncode == 0 and status_json(root)["documents"] == []
    assert doctune("add", str(docs), "-p", str(root)).returncode == 0
    everything = doctune("remove", "--all", "-p", str(root))
    assert everything.returncode == 0 and "Removed 3 document(s)" in everything.stderr
    assert status_json(root)["documents"] == [] and Store(Project.open(root)).chunks.count_rows() == 0


def test_rich_markup_in_file_names_is_shown_as_written(tmp_path):
    root = tmp_path / "p"
    Project.create(root)
    names = ["bad[/y].txt", "[bold red]x[/].txt", "ok[/link].md"]  # a '/' in a path: a folder, then a file
    for name in names:
        (tmp_path / name).parent.mkdir(exist_ok=True)
    (tmp_path / names[0]).write_bytes(bytes(range(256)) * 50)  # binary: fails
    (tmp_path / names[1]).write_bytes(b"")  # empty: fails
    (tmp_path / names[2]).write_text("# Title\n\nA note about [brackets].", encoding="utf-8")
    added = doctune("add", *(str(tmp_path / name) for name in names), "-p", str(root))
    assert added.returncode == 2 and "Traceback" not in added.stderr, added.stderr
    shown = added.stdout + added.stderr
    assert names[0] in shown and names[1] in shown
    status = doctune("status", "-p", str(root))
    assert status.returncode == 0 and "Traceback" not in status.stderr


def test_usage_errors_exit_1_and_change_nothing(tmp_path):
    root = tmp_path / "p"
    Project.create(root)
    (tmp_path / "a.txt").write_text("Some text.", encoding="utf-8")
    missing = doctune("add", str(tmp_path / "nope.pdf"), str(tmp_path / "a.txt"), "-p", str(root))
    assert missing.returncode == 1 and "No such file or folder" in missing.stderr
    assert "Traceback" not in missing.stderr
    overlap = doctune("add", str(tmp_path / "a.txt"), "--chunk-tokens", "100", "--chunk-overlap", "60", "-p", str(root))
    assert overlap.returncode == 1 and "less than half" in overlap.stderr
    unknown = doctune("remove", "nothing-like-this", "-p", str(root))
    assert unknown.returncode == 1 and "No document matches" in unknown.stderr
    assert status_json(root)["documents"] == []


def test_status_for_people(tmp_path):
    root = tmp_path / "p"
    Project.create(root)
    empty = doctune("status", "-p", str(root))
    assert empty.returncode == 0 and "No documents yet" in empty.stdout
    (tmp_path / "e.txt").write_bytes(b"")
    (tmp_path / "ok.md").write_text("# Title\n\nBody.", encoding="utf-8")
    doctune("add", str(tmp_path / "e.txt"), str(tmp_path / "ok.md"), "-p", str(root))
    shown = doctune("status", "-p", str(root))
    assert "1 document(s) ok, 1 with errors, 1 chunks." in shown.stdout
    assert "e.txt: the file is empty" in shown.stdout
