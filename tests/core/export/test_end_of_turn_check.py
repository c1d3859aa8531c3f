"""The end-of-turn check: a file whose greedy answer leaves the model's path and ends a little later is ready; a
file that never ends its turn is not. A real quantized file cannot be made to diverge on demand, so a scripted
stand-in answers with a chosen length."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from doctune.core.export.verify import FILE_ANSWER_SLACK, Reference, _check_end_of_turn

EOS = 7
BUDGET = 64


class ScriptedFile:
    """Answers every chat with ``length`` tokens, ending its turn if ``length`` fits in the tokens asked for."""

    def __init__(self, length: int) -> None:
        self.length = length
        self._model = SimpleNamespace(token_eot=lambda: -1)

    def token_eos(self) -> int:
        return EOS

    def create_chat_completion(self, *, max_tokens: int, **_: object) -> dict:
        ends = self.length <= max_tokens
        return {"choices": [{"finish_reason": "stop" if ends else "length"}],
                "usage": {"completion_tokens": min(self.length, max_tokens)}}


def reference(answer_tokens: int) -> Reference:
    return Reference(token_ids=[], top1=[], template_text=None, eos_ids=[EOS],
                     answer_ids=[1] * (answer_tokens - 1) + [EOS], answer_stops=True)


@pytest.mark.parametrize(("file_tokens", "ready"), [(40, True), (BUDGET + 20, True),
                                                   (FILE_ANSWER_SLACK * BUDGET, True),
                                                   (FILE_ANSWER_SLACK * BUDGET + 1, False), (10_000, False)])
def test_a_file_may_say_a_little_more_than_the_model_but_must_end_its_turn(file_tokens, ready):
    check = _check_end_of_turn(ScriptedFile(file_tokens), reference(50), BUDGET)
    assert check["passed"] is ready
    assert check["model_tokens"] == 50
    if not ready:
        assert f"within {FILE_ANSWER_SLACK * BUDGET} tokens" in check["problem"]
        assert "after 50" in check["problem"]


def test_a_file_with_another_end_of_turn_token_fails_whatever_it_says():
    wrong = ScriptedFile(10)
    wrong.token_eos = lambda: EOS + 1  # type: ignore[method-assign]
    check = _check_end_of_turn(wrong, reference(10), BUDGET)
    assert not check["passed"]
    assert "end-of-turn token" in check["problem"]
