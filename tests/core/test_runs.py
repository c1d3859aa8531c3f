"""Finding runs and exported files from the project's files: by recorded time, tolerant of broken files, torch-free."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from doctune.core import runs
from doctune.core.fsio import atomic_write_json


def _run(runs_dir, run_id: str, *, finished_at: float | None = None, status: str = "complete", adapter: bool = True):
    run_dir = runs_dir / run_id
    run_dir.mkdir(parents=True)
    atomic_write_json(run_dir / "config.json", {"schema_version": 1})
    if finished_at is not None:
        atomic_write_json(run_dir / "summary.json", {"schema_version": 1, "status": status, "finished_at": finished_at})
    if adapter:
        (run_dir / "adapter").mkdir()
    return run_dir


def _export(run_dir, finished_at: float | None, files: dict[str, int | None]):
    """``files``: format → bytes written on disk (None: missing); the manifest records 10 bytes for each."""
    out_dir = run_dir / "export"
    out_dir.mkdir()
    entries = {}
    for fmt, size in files.items():
        name = f"{run_dir.name}-{fmt}.gguf"
        if size is not None:
            (out_dir / name).write_bytes(b"x" * size)
        entries[fmt] = {"file": name, "ready": True, "bytes": 10}
    atomic_write_json(out_dir / "manifest.json", {"schema_version": 1, "started_at": 1.0, "finished_at": finished_at,
                                                  "files": entries})
    return out_dir


def test_the_latest_complete_run_is_the_newest_finished_at_not_the_newest_file(project):
    older = _run(project.runs_dir, "b-older", finished_at=100.0)
    newer = _run(project.runs_dir, "a-newer", finished_at=200.0)
    os.utime(older / "summary.json", (10_000, 10_000))  # touched later (a copy, a backup tool)
    os.utime(newer / "summary.json", (1_000, 1_000))
    _run(project.runs_dir, "c-interrupted")  # no summary yet
    _run(project.runs_dir, "d-no-adapter", finished_at=300.0, adapter=False)
    _run(project.runs_dir, "e-failed", finished_at=400.0, status="failed")
    assert runs.latest_complete_run(project) == newer
    folder, summary = runs.latest_complete(project.runs_dir)
    assert folder == newer and summary["finished_at"] == 200.0


def test_broken_or_unreadable_summaries_are_skipped(project):
    good = _run(project.runs_dir, "a-good", finished_at=100.0)
    torn = _run(project.runs_dir, "b-torn", finished_at=200.0)
    (torn / "summary.json").write_text('{"status": "comp', encoding="utf-8")
    listed = _run(project.runs_dir, "c-not-an-object", finished_at=300.0)
    (listed / "summary.json").write_text("[1, 2]", encoding="utf-8")
    unreadable = _run(project.runs_dir, "d-unreadable", finished_at=400.0)
    (unreadable / "summary.json").unlink()
    (unreadable / "summary.json").mkdir()  # reading it fails with an OSError, whoever runs the test
    assert runs.read_summary(unreadable) is None
    assert runs.latest_complete_run(project) == good


def test_each_run_has_one_state_that_every_part_uses(project):
    states = {
        "a-complete": _run(project.runs_dir, "a-complete", finished_at=100.0),
        "b-interrupted": _run(project.runs_dir, "b-interrupted", adapter=False),  # no summary yet: resumable
        "c-cancelled": _run(project.runs_dir, "c-cancelled", finished_at=150.0, status="cancelled", adapter=False),
        "d-no-adapter": _run(project.runs_dir, "d-no-adapter", finished_at=200.0, adapter=False),
        "e-torn": _run(project.runs_dir, "e-torn", finished_at=300.0),
    }
    (states["e-torn"] / "summary.json").write_text('{"status": "comp', encoding="utf-8")
    (project.runs_dir / "f-no-config").mkdir()  # killed before its config was written
    assert {run_dir.name: runs.run_state(run_dir) for run_dir in runs.run_folders(project.runs_dir)} == {
        "a-complete": runs.COMPLETE, "b-interrupted": runs.INTERRUPTED, "c-cancelled": runs.INTERRUPTED,
        "d-no-adapter": runs.UNUSABLE, "e-torn": runs.UNUSABLE, "f-no-config": runs.UNUSABLE,
    }

    from doctune.core.pipeline import _interrupted_runs

    # what `doctune run` may skip on, or resume
    assert runs.latest_complete_run(project) == states["a-complete"]
    assert [run_dir.name for run_dir, _config in _interrupted_runs(project)] == ["c-cancelled", "b-interrupted"]


def test_no_runs_folder_means_no_run(tmp_path):
    assert runs.latest_complete(tmp_path / "runs") is None
    assert runs.latest_manifest(tmp_path / "runs") is None
    assert runs.latest_ready_file(tmp_path / "runs", "q8_0") is None


def test_ready_files_must_be_on_disk_at_their_recorded_size(project):
    out_dir = _export(_run(project.runs_dir, "r1", finished_at=1.0), 5.0, {"q8_0": 10, "f16": None, "q4_k_m": 3})
    assert runs.ready_files(out_dir) == {"q8_0": out_dir / "r1-q8_0.gguf"}
    assert runs.ready_file(out_dir, "q8_0") == out_dir / "r1-q8_0.gguf"
    assert runs.ready_file(out_dir, "f16") is None


def test_the_latest_export_and_ready_file_follow_finished_at(project):
    first = _export(_run(project.runs_dir, "z-first", finished_at=1.0), 100.0, {"q8_0": 10, "q4_k_m": 10})
    second = _export(_run(project.runs_dir, "a-second", finished_at=2.0), 200.0, {"q8_0": 10})
    assert runs.latest_manifest(project.runs_dir) == second / "manifest.json"
    assert runs.latest_ready_file(project.runs_dir, "q8_0") == second / "a-second-q8_0.gguf"
    assert runs.latest_ready_file(project.runs_dir, "q4_k_m") == first / "z-first-q4_k_m.gguf"
    (second / "manifest.json").write_text("{not json", encoding="utf-8")
    assert runs.latest_manifest(project.runs_dir) == first / "manifest.json"


def test_the_older_names_still_work(project):
    from doctune.core.export import ready_gguf
    from doctune.core.train import latest_complete_run
    from doctune.core.train.checkpoints import read_summary

    run_dir = _run(project.runs_dir, "r1", finished_at=1.0)
    out_dir = _export(run_dir, 2.0, {"q8_0": 10})
    assert latest_complete_run(project) == run_dir
    assert read_summary(run_dir)["status"] == "complete"
    assert ready_gguf(project) == out_dir / "r1-q8_0.gguf"
    assert ready_gguf(project, "r1", "Q8_0") == out_dir / "r1-q8_0.gguf"


def test_importing_the_run_readers_loads_no_training_stack():
    code = ("import json, sys; import doctune.core.runs; "
            "print(json.dumps([m for m in ('torch', 'transformers', 'peft', 'numpy', 'gguf') if m in sys.modules]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(result.stdout) == []


def test_doctune_run_trains_again_when_only_an_older_run_matches_the_settings(project):
    from doctune.core.pipeline import _up_to_date_run

    settings_a = {"data": {"items_fingerprint": "items-1"}, "student": {"model": "s"}, "train": {"lr": 1}}
    settings_b = {**settings_a, "train": {"lr": 2}}
    wanted = {"items_fingerprint": "items-1", "student": {"model": "s"}, "train": {"lr": 1}}
    first = _run(project.runs_dir, "run-1", finished_at=100.0)
    atomic_write_json(first / "config.json", settings_a)
    assert _up_to_date_run(project, wanted) == first
    second = _run(project.runs_dir, "run-2", finished_at=200.0)  # trained with other settings, then changed back
    atomic_write_json(second / "config.json", settings_b)
    assert _up_to_date_run(project, wanted) is None  # run-1 would not be what export and chat use
