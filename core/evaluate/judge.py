"""The teacher as judge of open answers: a JSON verdict with a reason.

A verdict is one of ``correct``, ``partial``, ``incorrect``. A judge call that
raises, or returns something that is not such a verdict, is retried; after the
last attempt the answer is recorded as *unjudged* with the reason, and the
scoreboard leaves it out (it is never counted as right or wrong).
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from doctune.core.events import Cancelled, CancelToken

VERDICTS = ("correct", "partial", "incorrect")
VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": list(VERDICTS)},
        "reason": {"type": "string", "maxLength": 300},
    },
    "required": ["verdict", "reason"],
}
JUDGE_SYSTEM = (
    "You grade answers to questions about a document. Compare the candidate answer with the reference answer, "
    "using the source passage as the ground truth. Reply with JSON only: "
    '{"verdict": "correct" | "partial" | "incorrect", "reason": "<one short sentence>"}. '
    "correct: states the reference answer's facts (wording may differ) and nothing that contradicts the passage. "
    "partial: some of the facts, or right but mixed with a wrong claim. incorrect: wrong, missing or evasive."
)
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


class Teacher(Protocol):
    def complete(self, messages: list[dict], schema: dict | None = None, max_tokens: int = ...) -> Any: ...


@dataclass
class Judgment:
    verdict: str | None  # None: unjudged
    reason: str
    attempts: int
    errors: list[str] = field(default_factory=list)

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


def judge_messages(question: str, reference: str, source_text: str, answer: str) -> list[dict[str, str]]:
    user = (
        f"Question: {question}\n\nReference answer: {reference}\n\nSource passage:\n{source_text}\n\n"
        f"Candidate answer: {answer}\n\nYour verdict as JSON:"
    )
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def parse_verdict(data: Any, text: str) -> tuple[str, str] | None:
    """(verdict, reason) from the reply's parsed JSON, else from JSON found in its text."""
    if not isinstance(data, dict):
        match = _JSON_OBJECT.search(text or "")
        try:
            data = json.loads(match.group(0)) if match else None
        except json.JSONDecodeError:
            data = None
    if not isinstance(data, dict):
        return None
    verdict = str(data.get("verdict", "")).strip().lower()
    if verdict not in VERDICTS:
        return None
    return verdict, str(data.get("reason", "")).strip()[:500]


def judge_answer(
    teacher: Teacher, question: str, reference: str, source_text: str, answer: str,
    *, attempts: int = 3, max_tokens: int = 256, cancel: CancelToken | None = None,
) -> Judgment:
    """Ask ``teacher`` for a verdict, up to ``attempts`` times; unjudged if none is usable."""
    messages = judge_messages(question, reference, source_text, answer)
    errors: list[str] = []
    for attempt in range(1, attempts + 1):
        if cancel is not None:
            cancel.raise_if_cancelled()
        try:
            reply = teacher.complete(messages, schema=VERDICT_SCHEMA, max_tokens=max_tokens)
        except Cancelled:
            raise
        except Exception as exc:  # a judge failure is recorded, never fatal to the evaluation
            errors.append(f"{type(exc).__name__}: {exc}"[:300])
            continue
        parsed = parse_verdict(getattr(reply, "data", None), getattr(reply, "text", ""))
        if parsed is not None:
            return Judgment(parsed[0], parsed[1], attempt, errors)
        errors.append(f"not a verdict: {str(getattr(reply, 'text', ''))[:200]!r}")
    return Judgment(None, f"unjudged after {attempts} attempts: {errors[-1] if errors else 'no reply'}", attempts, errors)
