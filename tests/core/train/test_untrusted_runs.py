"""A run folder is a file in the project, not the user's consent: resuming never runs code it brings along.

Each test crafts what an attacker could put in a shared project (a run's config.json that turns
``trust_remote_code`` on for a student folder shipping its own Python code; a checkpoint whose state.pt is a
pickle that runs a command when loaded; a run id that is a path) and checks that nothing runs and the user gets
a clear error or an ordinary resume.
"""
from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from doctune.core.events import Cancelled, CancelToken, Events
from doctune.core.fsio import atomic_write_json, read_json
from doctune.core.train import TrainError, TrainParams, run
from doctune.core.train.checkpoints import latest_checkpoint

FAST = {"max_steps": 6, "batch_tokens": 256, "learning_rate": 3e-3, "checkpoint_every": 2}


def _interrupted_run(project, items_file):
    """A run cancelled after its step-2 checkpoint: resumable."""
    cancel = CancelToken()

    def watch(event):
        if event["event"] == "metric" and event["step"] == 3:
            cancel.cancel()

    with pytest.raises(Cancelled):
        run(TrainParams(project_dir=project.root, items_file=items_file, train=FAST), events=Events(watch),
            cancel=cancel)
    run_dir = next(p for p in project.runs_dir.iterdir() if p.is_dir())
    assert latest_checkpoint(run_dir) is not None
    return run_dir


def _student_with_code(source, folder, marker):
    """A copy of the tiny student whose config names its own Python module, which leaves ``marker`` when run."""
    shutil.copytree(source, folder)
    (folder / "evil.py").write_text(
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('code from the project folder ran')\n"
        "from transformers import Qwen2Config\n\n\n"
        "class EvilConfig(Qwen2Config):\n    pass\n", encoding="utf-8")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig"}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def test_resume_takes_trust_remote_code_from_the_settings_not_from_the_run_folder(student_project, qa_items_file,
                                                                                  tmp_path):
    run_dir = _interrupted_run(student_project, qa_items_file)
    marker = tmp_path / "PWNED"
    crafted = _student_with_code(student_project.config.student.model, student_project.root / "evil-student", marker)
    config = read_json(run_dir / "config.json")
    config["student"].update(model=str(crafted), trust_remote_code=True)
    atomic_write_json(run_dir / "config.json", config)
    assert student_project.config.student.trust_remote_code is False  # the user never turned it on

    result = _resume(student_project, run_dir)
    assert not marker.exists(), "code from the project folder ran"
    assert result.steps == 6  # the run resumed with the model's built-in (trusted) code


def test_trust_in_the_settings_covers_only_the_student_they_name(student_project, qa_items_file, tmp_path):
    """A user who trusts their own student's code does not thereby trust another folder a run file names."""
    run_dir = _interrupted_run(student_project, qa_items_file)
    student_project.config.student.trust_remote_code = True
    student_project.save()
    marker = tmp_path / "PWNED"
    crafted = _student_with_code(student_project.config.student.model, tmp_path / "other-student", marker)
    config = read_json(run_dir / "config.json")
    config["student"].update(model=str(crafted), trust_remote_code=True)
    atomic_write_json(run_dir / "config.json", config)

    _resume(student_project, run_dir)
    assert not marker.exists(), "code from a folder the settings do not name ran"


def _resume(project, run_dir):
    """Resume ``run_dir``; whatever the outcome, the caller checks first that no crafted code ran."""
    try:
        return run(TrainParams(project_dir=project.root, resume=run_dir.name), events=Events(), cancel=CancelToken())
    except Exception as exc:  # noqa: BLE001 — reported after the check that matters
        return exc


class _RunsACommand:
    """Unpickling this makes a folder: the smallest visible proof that loading ran code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.mkdir, (self.path,)


def test_a_crafted_checkpoint_state_is_refused_without_running_it(student_project, qa_items_file, tmp_path):
    run_dir = _interrupted_run(student_project, qa_items_file)
    marker = tmp_path / "PWNED"
    state = latest_checkpoint(run_dir) / "state.pt"
    genuine = torch.load(state, weights_only=True)  # a checkpoint DocTune writes loads with the safe loader
    assert {"optimizer", "scheduler", "rng"} <= set(genuine)
    torch.save({**genuine, "optimizer": _RunsACommand(marker)}, state)

    refused = _resume(student_project, run_dir)
    assert not marker.exists(), "loading the checkpoint ran code"
    assert isinstance(refused, TrainError) and "cannot be loaded safely" in str(refused)
    assert str(state) in str(refused) and "Delete that checkpoint folder" in str(refused)


@pytest.mark.parametrize("run_id", ["../other/runs/x", "/tmp", "..", "a b", 'evil"\nSYSTEM x'])
def test_resume_takes_run_ids_inside_the_project_only(student_project, run_id):
    with pytest.raises(TrainError, match="is not a run id"):
        run(TrainParams(project_dir=student_project.root, resume=run_id), events=Events(), cancel=CancelToken())
