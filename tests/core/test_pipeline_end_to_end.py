"""``doctune run`` from the command line, end to end on tiny models.

A child process runs ``python -m doctune.core run -p DIR --events jsonl`` on a
project of three sample documents, a tiny local GGUF teacher and the tiny
Qwen2 student, with budgets small enough for a shared 2-core machine. The
tests read its event lines and the project folder: every step finishes, a
second run skips what is done, and a run killed (SIGKILL) in the middle of
training resumes that same run and completes.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from doctune.core.fsio import read_json, read_jsonl
from doctune.core.pipeline import STEPS
from doctune.core.resources import resource_path
from doctune.core.tiny import random_teacher_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SAMPLE_DOCS = ("01-vellmora-archipelago.md", "02-quintrel-foundry.md", "03-oswin-tarrabeck.md")
SYSTEMS = ("base", "base+rag", "tuned", "tuned+rag")


# ----- the project -------------------------------------------------------------------------------------

def make_project(root: Path, student: Path, teacher: Path, *, max_steps: int, checkpoint_every: int,
                 chat_format: str = "f16"):
    """A project with three sample documents to add, and every budget set small; it exports F16 only, and
    chat and evaluation run the models as ``chat_format``."""
    from doctune.core.project import Project

    docs = root / "docs"
    docs.mkdir(parents=True)
    for name in SAMPLE_DOCS:
        shutil.copy(resource_path("sample/docs") / name, docs / name)
    project = Project.create(root / "project", name="Pipeline end to end")
    config = project.config
    config.teacher.kind, config.teacher.model_path = "local", str(teacher)
    random_teacher_settings(config)  # an untrained teacher's settings
    config.teacher.n_ctx = 1024
    config.synth.recipes = {"qa": 1.0}
    config.synth.max_question_chars = config.synth.max_answer_chars = 20
    config.student.model = str(student)
    config.train.replay_fraction = 0.0
    config.train.max_steps, config.train.checkpoint_every = max_steps, checkpoint_every
    config.train.batch_tokens = 256
    config.train.cpu_threads = 1  # the machine's cores are shared: no OpenMP spin-waiting
    config.export.formats = ["f16"]
    config.rag.gguf_format = chat_format
    config.rag.n_ctx, config.rag.k, config.rag.max_answer_tokens = 512, 1, 16
    config.eval.mc_answer_tokens, config.eval.open_answer_tokens = 8, 16
    config.eval.judge_attempts = 1
    project.save()
    return project, docs


@pytest.fixture
def tiny_pipeline_project(tmp_path, tiny_model, tiny_gguf):
    """``tiny_pipeline_project(max_steps=, checkpoint_every=)`` → (project, folder of documents to add)."""

    def build(max_steps: int = 30, checkpoint_every: int = 10, chat_format: str = "f16"):
        folder = tmp_path / f"steps-{max_steps}"
        return make_project(folder, tiny_model("qwen2"), tiny_gguf("qwen2"), max_steps=max_steps,
                            checkpoint_every=checkpoint_every, chat_format=chat_format)

    return build


# ----- the child process -------------------------------------------------------------------------------

def command(project, *extra: str) -> list[str]:
    return [sys.executable, "-m", "doctune.core", "run", "-p", str(project.root), "--events", "jsonl", *extra]


def run_pipeline(project, *extra: str, timeout: float = 600) -> tuple[int, list[dict], float]:
    """Run ``doctune run`` to its end; (exit code, events, seconds)."""
    started = time.monotonic()
    child = subprocess.run(command(project, *extra), capture_output=True, text=True, timeout=timeout)
    seconds = time.monotonic() - started
    events = [json.loads(line) for line in child.stdout.splitlines() if line.strip()]
    assert events, child.stderr[-3000:]
    return child.returncode, events, seconds


def kill_during_training(project, *extra: str, after_step: int, timeout: float = 600) -> list[dict]:
    """Start ``doctune run`` and SIGKILL it once training has passed ``after_step``; the events seen until then."""
    child = subprocess.Popen(command(project, *extra), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             start_new_session=True)
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        for line in child.stdout:
            events.append(json.loads(line))
            event = events[-1]
            if event["event"] == "metric" and event["stage"] == "train" and event["step"] >= after_step:
                os.killpg(child.pid, signal.SIGKILL)
                break
            assert time.monotonic() < deadline, "training never reached the step to kill at"
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL, f"the pipeline ended before it was killed: {events[-1:]}"
    return events


def final(events: list[dict]) -> dict:
    last = events[-1]
    assert last["event"] == "done" and last["stage"] == "run", last
    return last


def outcomes(events: list[dict]) -> dict[str, dict]:
    return {outcome["step"]: outcome for outcome in final(events)["steps"]}


def step_reports(events: list[dict]) -> dict[str, str]:
    """The status each step reported in its own event as the pipeline went."""
    return {e["step"]: e["status"] for e in events if e["event"] == "log" and e["stage"] == "run" and "step" in e}


# ----- what is on disk ---------------------------------------------------------------------------------

def run_folders(project) -> list[Path]:
    return sorted(path for path in Path(project.runs_dir).iterdir() if (path / "config.json").is_file())


def eval_folders(project) -> list[Path]:
    return sorted(path for path in Path(project.eval_dir).iterdir() if path.is_dir())


def assert_one_complete_run(project) -> Path:
    (run_dir,) = run_folders(project)
    summary = read_json(run_dir / "summary.json")
    assert summary["status"] == "complete" and (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    total = read_json(run_dir / "config.json")["data"]["total_steps"]
    steps = [record["step"] for record in read_jsonl(run_dir / "metrics.jsonl")]
    assert steps == list(range(1, total + 1)), "every step recorded exactly once"
    return run_dir


def assert_ready_gguf(project, run_dir: Path, fmt: str = "f16") -> Path:
    from doctune.core.export import ready_gguf

    manifest = read_json(run_dir / "export" / "manifest.json")
    entry = manifest["files"][fmt]
    assert entry["ready"] is True and entry["verification"]["passed"] is True, entry
    path = ready_gguf(project, run_id=run_dir.name, fmt=fmt)
    assert path == run_dir / "export" / entry["file"] and path.stat().st_size > 1_000_000
    assert path.read_bytes()[:4] == b"GGUF"
    return path


def assert_evaluated(project) -> Path:
    (folder,) = eval_folders(project)
    questions = list(read_jsonl(Path(project.eval_dir) / "questions.jsonl"))
    results = list(read_jsonl(folder / "results.jsonl"))
    assert len(questions) >= 2 and len(results) == len(questions) * len(SYSTEMS)
    assert {record["system"] for record in results} == set(SYSTEMS)
    for record in results:  # the +rag systems answered from passages the index found
        retrieved = record["system"].endswith("+rag")
        assert bool(record["sources"]) == retrieved and all(source["chunk_id"] for source in record["sources"])
    summary = read_json(folder / "summary.json")
    assert summary["complete"] is True and summary["skipped"] == {}
    open_questions = sum(question["kind"] == "open" for question in questions)
    for system in SYSTEMS:
        scores = summary["scores"][system]
        likelihood, judged = scores["mc_likelihood"], scores["open_judge"]
        assert likelihood["n"] >= 1 and 0.0 <= likelihood["accuracy"] <= 1.0, (system, likelihood)
        assert judged["n"] + judged["unjudged"] == scores["open_f1"]["n"] == open_questions >= 1, (system, scores)
    report = Path(project.root) / "reports" / f"{folder.name}.html"
    assert report.is_file() and all(system in report.read_text(encoding="utf-8") for system in SYSTEMS)
    return folder


# ----- the tests ---------------------------------------------------------------------------------------

def test_run_takes_a_new_project_through_every_step_and_a_second_run_skips_them(tiny_pipeline_project):
    # [export] formats is f16 only, but chat and evaluation use q8_0: the run exports that too
    project, docs = tiny_pipeline_project(max_steps=30, checkpoint_every=10, chat_format="q8_0")

    code, events, first_seconds = run_pipeline(project, "--add", str(docs))

    assert code == 0, final(events)
    assert {step: o["status"] for step, o in outcomes(events).items()} == {step: "done" for step in STEPS}
    assert step_reports(events) == {step: "done" for step in STEPS}
    items = list(read_jsonl(Path(project.synth_dir) / "items.jsonl"))
    assert len(items) == len(SAMPLE_DOCS) and all(item["kind"] == "qa" for item in items)
    run_dir = assert_one_complete_run(project)
    gguf = assert_ready_gguf(project, run_dir)
    assert_ready_gguf(project, run_dir, "q8_0")
    eval_dir = assert_evaluated(project)

    from doctune.core.project import Project
    from doctune.core.rag import search

    hits = search(Project.open(project.root), "Quintrel Foundry", k=3)
    assert hits and any("Quintrel" in hit.text for hit in hits)

    answers_before = (eval_dir / "answers.jsonl").read_bytes()
    gguf_mtime = gguf.stat().st_mtime_ns
    code, again, second_seconds = run_pipeline(project)

    assert code == 0, final(again)
    steps = outcomes(again)
    assert steps["train"]["status"] == steps["export"]["status"] == "skipped"
    assert "up to date" in steps["train"]["note"] and "is exported" in steps["export"]["note"]
    assert steps["synthesize"]["note"].startswith("0 new") and steps["questions"]["note"].startswith("0 new")
    assert steps["index"]["note"].startswith("0 chunk(s) embedded")
    assert not [e for e in again if e["stage"] == "train" and e["event"] in ("metric", "progress")]
    assert run_folders(project) == [run_dir] and eval_folders(project) == [eval_dir]
    assert len(list(read_jsonl(Path(project.synth_dir) / "items.jsonl"))) == len(items)
    assert gguf.stat().st_mtime_ns == gguf_mtime and (eval_dir / "answers.jsonl").read_bytes() == answers_before
    work = ("synthesize", "questions", "train", "export", "evaluate")
    first_work = sum(o["seconds"] for step, o in outcomes(events).items() if step in work)
    second_work = sum(steps[step]["seconds"] for step in work)
    assert second_work < first_work / 4 and second_seconds < first_seconds, (second_work, first_work)


def test_run_killed_during_training_resumes_the_same_run_and_completes(tiny_pipeline_project):
    project, docs = tiny_pipeline_project(max_steps=120, checkpoint_every=10)

    seen = kill_during_training(project, "--add", str(docs), after_step=25)

    assert step_reports(seen) == {step: "done" for step in STEPS[:4]}
    (killed_run,) = run_folders(project)
    assert not (killed_run / "summary.json").exists()
    checkpoints = [e for e in seen if e["stage"] == "train" and e.get("message", "").startswith("Checkpoint saved")]
    assert checkpoints, "a checkpoint was saved before the kill"

    code, events, _ = run_pipeline(project)

    assert code == 0, final(events)
    steps = outcomes(events)
    assert {step: o["status"] for step, o in steps.items()} == {step: "done" for step in STEPS}
    assert steps["train"]["note"] == f"run {killed_run.name} (resumed)"
    (resumed,) = [e["message"] for e in events if e["stage"] == "train" and
                  e.get("message", "").startswith("Resuming run")]
    assert resumed.startswith(f"Resuming run {killed_run.name} from step ") and int(resumed.split()[-1]) >= 20
    first_step = min(e["step"] for e in events if e["event"] == "metric" and e["stage"] == "train")
    assert first_step == int(resumed.split()[-1]) + 1, "training went on from the checkpoint, not from the start"
    assert assert_one_complete_run(project) == killed_run
    assert_ready_gguf(project, killed_run)
    assert_evaluated(project)
