"""Training as separate processes: SIGKILL then --resume, and two processes under torchrun (gloo, CPU)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from doctune.core.events import CancelToken, Events
from doctune.core.fsio import read_json
from doctune.core.train import TrainParams, latest_complete_run, run
from doctune.core.train.checkpoints import latest_checkpoint

ARGS = ["--max-steps", "16", "--checkpoint-every", "4", "--batch-tokens", "256", "--lr", "3e-3", "--seed", "7"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _doctune(*args: str) -> list[str]:
    return [sys.executable, "-m", "doctune.core", *args]


@pytest.mark.slow
def test_sigkill_then_resume_ends_like_an_uninterrupted_run(student_project, qa_items_file):
    student_project.config.train.cpu_threads = 1
    student_project.save()
    command = _doctune("train", "-p", str(student_project.root), "--items", str(qa_items_file), "--events", "jsonl",
                       *ARGS)
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_env())
    try:
        for line in child.stdout:
            event = json.loads(line)
            if event["event"] == "metric" and event["step"] >= 10:
                child.send_signal(signal.SIGKILL)
                break
    finally:
        child.kill()
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    run_dir = next(p for p in student_project.runs_dir.iterdir() if p.is_dir())
    assert latest_checkpoint(run_dir).name == "step-00000008"
    assert latest_complete_run(student_project) is None
    resumed = subprocess.run(_doctune("train", "-p", str(student_project.root), "--resume", run_dir.name),
                             env=_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    resumed_loss = read_json(run_dir / "summary.json")["final_loss"]

    train = {"max_steps": 16, "checkpoint_every": 4, "batch_tokens": 256, "learning_rate": 3e-3, "seed": 7}
    reference = run(TrainParams(project_dir=student_project.root, items_file=qa_items_file, train=train),
                    events=Events(), cancel=CancelToken())
    assert resumed_loss == pytest.approx(reference.final_loss, abs=1e-3)


@pytest.mark.slow
def test_two_cpu_processes_under_torchrun_write_one_adapter(student_project, qa_items_file):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "doctune.core", "train", "-p", str(student_project.root), "--items", str(qa_items_file),
               "--events", "jsonl", "--max-steps", "4", "--batch-tokens", "256"]
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [e["step"] for e in events if e["event"] == "metric"] == [1, 2, 3, 4]  # only rank 0 reports
    run_dirs = [p for p in student_project.runs_dir.iterdir() if p.is_dir()]
    assert len(run_dirs) == 1
    summary = read_json(run_dirs[0] / "summary.json")
    assert summary["status"] == "complete" and summary["world_size"] == 2
    assert read_json(run_dirs[0] / "config.json")["world_size"] == 2
    assert (run_dirs[0] / "adapter" / "adapter_model.safetensors").is_file()
