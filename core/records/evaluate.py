"""The records of one evaluation (``eval/<eval-id>/``)."""
from __future__ import annotations

from typing import Any

from pydantic import Field

from doctune.core.records.base import Record


class EvalMeta(Record):
    """``meta.json``: what was evaluated; ``fingerprint`` finds the evaluation to continue."""

    WHAT = "evaluation description"

    eval_id: str | None = None
    created_at: str | None = None
    fingerprint: str | None = None
    systems: list[str] = Field(default_factory=list)


class EvalAnswer(Record):
    """One line of ``answers.jsonl`` (and, joined with the question and verdict, of ``results.jsonl``)."""

    WHAT = "evaluation answers"

    question_id: str
    system: str
    kind: str | None = None
    doc_id: str | None = None
    chunk_id: str | None = None
    answer: str | None = None


class EvalJudgment(Record):
    """One line of ``judgments.jsonl``: the judge's verdict on one open answer."""

    WHAT = "evaluation verdicts"

    question_id: str
    system: str
    verdict: Any = None
    reason: str | None = None
    attempts: int = 0
    judged_at: str | None = None


class EvalSummary(Record):
    """``summary.json``: the scoreboard of one evaluation (systems, scores, comparisons, per document)."""

    WHAT = "evaluation summary"

    eval_id: str | None = None
    systems: list[str] = Field(default_factory=list)
    skipped: dict[str, str] = Field(default_factory=dict)
    questions: dict[str, int] = Field(default_factory=dict)
    scores: dict[str, Any] = Field(default_factory=dict)
    comparisons: list[Any] = Field(default_factory=list)
    per_document: Any = None
