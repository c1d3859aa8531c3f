"""The evaluation runner on real llama.cpp models: answers, skips, resumes, judges."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from eval_helpers import sample_questions, stable, write_questions

from doctune.core.evaluate import EvalParams, open_eval, run
from doctune.core.events import CancelToken, Events, RecordingSink


def evaluate(project, systems, **kwargs):
    sink = RecordingSink()
    result = run(EvalParams(project_dir=project.root, systems=systems, **kwargs), events=Events(sink), cancel=CancelToken())
    return result, sink


def test_a_missing_model_is_skipped_and_the_others_run(small_answers, base_gguf_file, tmp_path):
    project = small_answers
    write_questions(project, sample_questions()[:6])
    missing = tmp_path / "gone.gguf"
    result, sink = evaluate(project, [str(base_gguf_file), f"{missing}+rag", "tuned"], judge=False)
    assert set(result.skipped) == {f"{missing}+rag", "tuned"}
    assert "not found" in result.skipped[f"{missing}+rag"]
    assert any(f"Skipping {missing}+rag" in w["message"] for w in sink.of("warning"))
    records = [json.loads(line) for line in result.results_path.read_text().splitlines()]
    assert len(records) == 6 and {r["system"] for r in records} == {str(base_gguf_file)}
    mc = [r for r in records if r["kind"] == "mc"]
    assert len(mc) == 3
    for record in mc:
        assert len(record["mc"]["option_logprobs"]) == 4 and all(lp < 0 for lp in record["mc"]["option_logprobs"])
        assert record["mc"]["likelihood_letter"] in "ABCD" and record["context_tokens"] > 0
    assert all(0 <= r["open"]["f1"] <= 1 and r["open"]["verdict"] is None for r in records if r["kind"] == "open")
    summary = result.summary
    assert summary["skipped"] == result.skipped and summary["complete"] is False
    assert summary["scores"][str(base_gguf_file)]["mc_likelihood"]["n"] == 3


def test_rerun_skips_answered_pairs_and_keeps_the_file(small_answers, base_gguf_file):
    project = small_answers
    write_questions(project, sample_questions(("mc",))[:4])
    first, _ = evaluate(project, [str(base_gguf_file)], judge=False)
    before = first.results_path.read_text()
    again, _ = evaluate(project, [str(base_gguf_file)], judge=False)
    assert again.eval_id == first.eval_id and again.answered == 0
    assert again.results_path.read_text() == before
    fresh, _ = evaluate(project, [str(base_gguf_file)], judge=False, new=True)
    assert fresh.eval_id != first.eval_id and fresh.answered == 4
    assert stable(open_eval(project, fresh.eval_id).results()) == stable(open_eval(project, first.eval_id).results())


@dataclass
class Reply:
    text: str
    data: object = None


class FlakyJudge:
    """Garbage for one question, an exception then a verdict for another, a verdict for the rest."""

    def __init__(self, garbage_for: str, flaky_for: str):
        self.garbage_for, self.flaky_for, self.failed_once = garbage_for, flaky_for, False

    def complete(self, messages, schema=None, max_tokens=256):
        prompt = messages[-1]["content"]
        if self.garbage_for in prompt:
            return Reply("I cannot grade this, sorry.")
        if self.flaky_for in prompt and not self.failed_once:
            self.failed_once = True
            raise ConnectionError("connection reset")
        return Reply('{"verdict": "incorrect", "reason": "does not name the fact"}')


def test_a_judge_failing_for_some_answers_leaves_them_unjudged(small_answers, base_gguf_file):
    project = small_answers
    questions = sample_questions(("open",))[:3]
    write_questions(project, questions)
    judge = FlakyJudge(garbage_for=questions[0]["question"], flaky_for=questions[1]["question"])
    sink = RecordingSink()
    result = run(EvalParams(project_dir=project.root, systems=[str(base_gguf_file)]), events=Events(sink),
                 cancel=CancelToken(), open_teacher=lambda project: judge)
    by_id = {r["question_id"]: r["open"] for r in open_eval(project, result.eval_id).results()}
    garbage, flaky, fine = (by_id[q["id"]] for q in questions)
    assert garbage["verdict"] is None and "unjudged after 3 attempts" in garbage["reason"]
    assert flaky["verdict"] == "incorrect" and flaky["judge_attempts"] == 2
    assert fine["verdict"] == "incorrect" and fine["judge_attempts"] == 1
    judged = result.summary["scores"][str(base_gguf_file)]["open_judge"]
    assert (judged["n"], judged["incorrect"], judged["unjudged"]) == (2, 2, 1)  # never counted right or wrong
    assert any("Unjudged" in w["message"] for w in sink.of("warning"))


def test_no_teacher_leaves_open_answers_pending_for_the_next_run(small_answers, base_gguf_file):
    project = small_answers
    write_questions(project, sample_questions(("open",))[:2])

    def no_teacher(project):
        raise RuntimeError("no teacher configured")

    sink = RecordingSink()
    result = run(EvalParams(project_dir=project.root, systems=[str(base_gguf_file)]), events=Events(sink),
                 cancel=CancelToken(), open_teacher=no_teacher)
    assert result.judged == 0 and any("could not be opened" in w["message"] for w in sink.of("warning"))
    judge = FlakyJudge(garbage_for="\0", flaky_for="\0")
    again = run(EvalParams(project_dir=project.root, systems=[str(base_gguf_file)]), events=Events(),
                cancel=CancelToken(), open_teacher=lambda project: judge)
    assert again.answered == 0 and again.judged == 2
    assert again.summary["scores"][str(base_gguf_file)]["open_judge"]["unjudged"] == 0


def _doctune(project_dir: Path, gguf: Path) -> list[str]:
    return [sys.executable, "-m", "doctune.core", "eval", "-p", str(project_dir), "--systems", str(gguf),
            "--no-judge", "--events", "jsonl"]


@pytest.mark.slow
def test_resume_after_sigkill_gives_the_same_results_as_an_uninterrupted_run(tmp_path, base_gguf_file):
    from doctune.core.project import Project

    projects = []
    for name in ("killed", "clean"):
        project = Project.create(tmp_path / name)
        project.config.rag.max_answer_tokens = 16
        project.config.rag.n_ctx = 512
        project.save()
        write_questions(project, sample_questions()[:16])
        projects.append(project)
    killed, clean = projects
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(_doctune(killed.root, base_gguf_file), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               env=env)
    answers = None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        found = list(Path(killed.eval_dir).glob("*/answers.jsonl"))
        if found and len(found[0].read_bytes().splitlines()) >= 5:
            answers = found[0]
            break
        time.sleep(0.02)
    assert answers is not None and process.poll() is None, "the evaluation ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    interrupted = len(answers.read_bytes().splitlines())
    assert 5 <= interrupted < 16
    for project in (killed, clean):
        done = subprocess.run(_doctune(project.root, base_gguf_file), capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    resumed_store, clean_store = open_eval(killed), open_eval(clean)
    assert len(resumed_store.results()) == 16
    assert stable(resumed_store.results()) == stable(clean_store.results())
    assert len(list(resumed_store.answers())) == 16  # no pair answered twice counts
