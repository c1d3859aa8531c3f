"""The judge: verdicts parsed, failures retried, then recorded as unjudged."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from doctune.core.evaluate.judge import judge_answer, parse_verdict


@dataclass
class Reply:
    text: str
    data: object = None


class ScriptedTeacher:
    """A teacher whose replies (or failures) are scripted per call: a fault a real teacher produces only by chance."""

    def __init__(self, script):
        self.script = list(script)
        self.calls = 0

    def complete(self, messages, schema=None, max_tokens=256):
        self.calls += 1
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


def test_parse_verdict_from_data_or_text():
    assert parse_verdict({"verdict": "Correct", "reason": "same fact"}, "") == ("correct", "same fact")
    assert parse_verdict(None, 'Sure! {"verdict": "partial", "reason": "half"} done') == ("partial", "half")
    assert parse_verdict(None, "I think it is correct") is None
    assert parse_verdict({"verdict": "maybe"}, "") is None
    assert parse_verdict(None, '{"verdict": "correct", ') is None


def test_a_failure_then_a_verdict_is_judged():
    teacher = ScriptedTeacher([TimeoutError("server busy"), Reply('{"verdict": "incorrect", "reason": "wrong year"}')])
    judgment = judge_answer(teacher, "When?", "1761", "cast in 1761", "1749", attempts=3)
    assert (judgment.verdict, judgment.reason, judgment.attempts) == ("incorrect", "wrong year", 2)
    assert judgment.errors == ["TimeoutError: server busy"]


def test_garbage_every_time_is_unjudged_never_scored():
    teacher = ScriptedTeacher([Reply("lol"), Reply("{not json"), Reply('{"verdict": "great"}')])
    judgment = judge_answer(teacher, "When?", "1761", "cast in 1761", "1761", attempts=3)
    assert judgment.verdict is None and judgment.attempts == 3 and teacher.calls == 3
    assert "unjudged after 3 attempts" in judgment.reason and len(judgment.errors) == 3


def test_cancel_stops_judging():
    from doctune.core.events import Cancelled, CancelToken

    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        judge_answer(ScriptedTeacher([]), "q", "a", "s", "x", cancel=cancel)
