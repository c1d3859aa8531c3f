"""Evaluation throughput on tiny models: question × system pairs per second, and the
share of wall time spent outside model calls.

Two systems (the tiny Qwen2 as F16 GGUF under two file names, so each loads its
own model) answer 20 fictional-facts multiple-choice questions and 10 open
ones (answers up to 32 tokens) through ``doctune.core.evaluate.run`` (no judge). Model calls are timed
where they happen — loading a model, building its prompt, generating, and
scoring options — and everything else (resolving systems, fingerprinting,
writing and fsyncing records, merging, statistics, summary) is overhead.
Target: overhead < 10 % of wall time.

Baseline, measured in the same run: the same pairs through the same chat
systems in a bare loop (no records, no scoring, no summary). Both are run
twice, alternating, on fresh projects; the best of each is kept.

Usage: ``python bench/eval.py`` (no arguments); the last line is JSON.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "core" / "evaluate"))

TARGET_OVERHEAD = 0.10
MC_QUESTIONS = 20
OPEN_QUESTIONS = 10
ANSWER_TOKENS = 32
REPEATS = 2


class Timed:
    """Wraps a chat system so that the time spent in model calls is added up."""

    def __init__(self, system, clock: list[float]) -> None:
        self._system, self._clock = system, clock

    def __getattr__(self, name):
        return getattr(self._system, name)

    def __setattr__(self, name, value):
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._system, name, value)

    def _timed(self, call, *args, **kwargs):
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            self._clock[0] += time.perf_counter() - started

    def stream(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            yield from self._system.stream(*args, **kwargs)
        finally:
            self._clock[0] += time.perf_counter() - started

    def prompt(self, *args, **kwargs):
        return self._timed(self._system.prompt, *args, **kwargs)

    def option_logprob(self, *args, **kwargs):
        return self._timed(self._system.option_logprob, *args, **kwargs)

    def close(self):
        return self._timed(self._system.close)


def build_models(folder: Path) -> list[Path]:
    from doctune.core.export.gguf import write_gguf
    from doctune.core.tiny import ensure_tiny_model

    model = ensure_tiny_model("qwen2", folder / "tiny")
    first = write_gguf(model, folder / "student-a.gguf")
    second = folder / "student-b.gguf"
    shutil.copy(first, second)
    return [first, second]


def make_project(folder: Path, name: str):
    from eval_helpers import sample_questions, write_questions

    from doctune.core.project import Project

    project = Project.create(folder / name)
    project.config.rag.n_ctx = 512
    project.config.rag.max_answer_tokens = ANSWER_TOKENS
    project.save()
    write_questions(project, sample_questions(("mc",))[:MC_QUESTIONS] + sample_questions(("open",))[:OPEN_QUESTIONS])
    return project


def measure_eval(project, models: list[Path]) -> dict:
    from doctune.core.evaluate import EvalParams, run
    from doctune.core.evaluate.step import open_spec
    from doctune.core.events import CancelToken, Events

    clock = [0.0]

    def timed_open(project, spec, backends, events, cancel):
        started = time.perf_counter()
        try:
            return Timed(open_spec(project, spec, backends, events, cancel), clock)
        finally:
            clock[0] += time.perf_counter() - started

    started = time.perf_counter()
    result = run(EvalParams(project_dir=project.root, systems=[str(m) for m in models], judge=False),
                 events=Events(), cancel=CancelToken(), open_system=timed_open)
    wall = time.perf_counter() - started
    return {"pairs": result.answered, "wall_s": wall, "model_s": clock[0]}


def measure_bare_loop(project, models: list[Path]) -> dict:
    from doctune.core.chat import open_system
    from doctune.core.evaluate.step import mc_prompt
    from doctune.core.items import load_eval_questions

    questions = load_eval_questions(project)
    started = time.perf_counter()
    pairs = 0
    for model in models:
        system = open_system(project, str(model))
        for question in questions:
            system.max_answer_tokens = ANSWER_TOKENS  # as in the evaluation: the [rag] limit caps both kinds
            "".join(system.stream(mc_prompt(question) if question.kind == "mc" else question.question))
            if question.kind == "mc":
                messages = system.prompt(question.question).messages
                for option in question.options:
                    system.option_logprob(messages, option)
            pairs += 1
        system.close()
    return {"pairs": pairs, "wall_s": time.perf_counter() - started}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="doctune-bench-eval-") as tmp:
        folder = Path(tmp)
        models = build_models(folder)
        bares, evals = [], []
        for repeat in range(REPEATS):  # alternate, keep the best of each: the machine's load varies
            bares.append(measure_bare_loop(make_project(folder, f"bare{repeat}"), models))
            evals.append(measure_eval(make_project(folder, f"eval{repeat}"), models))
        bare = min(bares, key=lambda figures: figures["wall_s"])
        evaluated = min(evals, key=lambda figures: figures["wall_s"])
    overhead = 1 - evaluated["model_s"] / evaluated["wall_s"]
    rate = evaluated["pairs"] / evaluated["wall_s"]
    baseline_rate = bare["pairs"] / bare["wall_s"]
    figures = {
        "bench": "eval",
        "pairs": evaluated["pairs"],
        "pairs_per_s": round(rate, 2),
        "wall_s": round(evaluated["wall_s"], 2),
        "model_call_s": round(evaluated["model_s"], 2),
        "overhead_fraction": round(overhead, 4),
        "baseline_bare_loop_pairs_per_s": round(baseline_rate, 2),
        "ratio_to_baseline": round(rate / baseline_rate, 3),
        "target_overhead_fraction": TARGET_OVERHEAD,
        "meets_target": overhead < TARGET_OVERHEAD,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
