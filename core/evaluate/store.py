"""Where an evaluation lives: ``eval/<eval-id>/`` in the project (``core.records.EvalLayout``).

Its files are records of ``core.records``: ``EvalMeta`` (what was evaluated:
systems, questions fingerprint), the append-only logs of ``EvalAnswer`` (one
per question × system as it is answered) and ``EvalJudgment`` (the judge's
verdict on each open answer), the results (answers joined with verdicts, in
question × system order, rewritten atomically) and the ``EvalSummary`` (the
scoreboard and statistics, rewritten atomically).

The two append-only logs are the ground truth, written one flushed line at a
time, so a run killed at any point loses at most the line being written and a
re-run continues where it stopped. The results and the summary are derived
from them and can always be rebuilt.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from doctune.core.fsio import JsonlAppender
from doctune.core.records import (
    EvalAnswer,
    EvalJudgment,
    EvalLayout,
    EvalMeta,
    EvalSummary,
    read_records,
    write_records,
)

_EVAL_ID = re.compile(r"^\d{8}-\d{6}(-\d+)?$")

Key = tuple[str, str]  # (question id, system)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class EvalStore:
    """One evaluation's folder."""

    folder: Path

    @property
    def eval_id(self) -> str:
        return self.folder.name

    @property
    def layout(self) -> EvalLayout:
        return EvalLayout(self.folder)

    @property
    def meta_path(self) -> Path:
        return self.layout.meta

    @property
    def answers_path(self) -> Path:
        return self.layout.answers

    @property
    def judgments_path(self) -> Path:
        return self.layout.judgments

    @property
    def results_path(self) -> Path:
        return self.layout.results

    @property
    def summary_path(self) -> Path:
        return self.layout.summary

    def meta(self) -> EvalMeta:
        return EvalMeta.load(self.meta_path)

    def answers(self) -> dict[Key, dict]:
        """Answered pairs; the first record of a pair wins, so a duplicate can never count twice."""
        found: dict[Key, dict] = {}
        for record in read_records(EvalAnswer, self.answers_path):
            found.setdefault((record.question_id, record.system), record.to_data())
        return found

    def judgments(self) -> dict[Key, dict]:
        found: dict[Key, dict] = {}
        for record in read_records(EvalJudgment, self.judgments_path):
            found.setdefault((record.question_id, record.system), record.to_data())
        return found

    def answer_log(self) -> JsonlAppender:
        return JsonlAppender(self.answers_path)

    def judgment_log(self) -> JsonlAppender:
        return JsonlAppender(self.judgments_path)

    def write_results(self, records: Iterable[dict]) -> None:
        write_records(self.results_path, [EvalAnswer.from_data(record, self.results_path) for record in records])

    def results(self) -> list[dict]:
        return [record.to_data() for record in read_records(EvalAnswer, self.results_path)]

    def write_summary(self, summary: dict) -> None:
        EvalSummary.from_data(summary, self.summary_path).save(self.summary_path)

    def summary(self) -> dict | None:
        return EvalSummary.load(self.summary_path).to_data() if self.summary_path.exists() else None


def evals_root(project) -> Path:
    return Path(project.eval_dir)


def list_evals(project) -> list[EvalStore]:
    """Evaluations of the project, oldest first (ids sort by creation time)."""
    root = evals_root(project)
    if not root.is_dir():
        return []
    return [EvalStore(folder) for folder in sorted(root.iterdir())
            if folder.is_dir() and _EVAL_ID.match(folder.name) and EvalLayout(folder).meta.exists()]


def find_eval(project, fingerprint: str) -> EvalStore | None:
    """The latest evaluation made from the same questions, systems and models."""
    for store in reversed(list_evals(project)):
        if store.meta().fingerprint == fingerprint:
            return store
    return None


def open_eval(project, eval_id: str | None = None) -> EvalStore | None:
    """The evaluation named ``eval_id``, or the latest one; None if there is none."""
    evals = list_evals(project)
    if eval_id is None:
        return evals[-1] if evals else None
    return next((store for store in evals if store.eval_id == eval_id), None)


def create_eval(project, meta: dict[str, Any]) -> EvalStore:
    """A new evaluation folder named after the current UTC time (unique)."""
    root = evals_root(project)
    base = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    name, suffix = base, 1
    while (root / name).exists():
        suffix += 1
        name = f"{base}-{suffix}"
    folder = root / name
    folder.mkdir(parents=True)
    store = EvalStore(folder)
    EvalMeta.model_validate({"eval_id": name, "created_at": now_iso(), **meta}).save(store.meta_path)
    return store
