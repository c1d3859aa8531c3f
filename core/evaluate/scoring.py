"""Scoring one answer: the chosen letter of a multiple-choice answer, the
option picked by likelihood, and the judge-free token F1 of an open answer.

Pure functions on strings and numbers; no model is touched here.
"""
from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

LETTERS = "ABCDEFGH"

_EMPHASIS = re.compile(r"[*_`]+")
# "B", "B.", "B)", "(B)", "B: text", "(b) text" at the very start of the answer.
_LEADING = re.compile(r"^\s*(?:\(([A-Ha-h])\)|\[([A-Ha-h])\]|([A-H])(?=\s*(?:[.:)\-]|$))|([a-h])(?=\s*(?:[.:)]|$)))")
# "The answer is B.", "Answer: (C)", "correct option is D", "I choose B".
_STATED = re.compile(
    r"(?i:answer|option|choice|choose|pick|select)(?:\s+(?i:is|would\s+be|:))?\s*:?\s*(?i:option\s+|letter\s+)?"
    r"(?:\(([A-Ha-h])\)|([A-H])(?![A-Za-z0-9])|([a-h])(?=\s*(?:[.:)]|$)))"
)


def option_letters(n_options: int) -> str:
    """The letters naming ``n_options`` options: ``"ABCD"`` for four."""
    if not 1 <= n_options <= len(LETTERS):
        raise ValueError(f"between 1 and {len(LETTERS)} options are supported, got {n_options}")
    return LETTERS[:n_options]


def parse_choice(answer: str, n_options: int = 4) -> str | None:
    """The option letter a generated answer commits to, or None when it does not.

    Accepts a bare letter ("B", "(B)", "b)"), a letter followed by the option
    text ("B. Paris"), and a stated choice ("The answer is B.", "Answer: (C)").
    An answer that states two different letters is unparseable.
    """
    letters = option_letters(n_options)
    text = _EMPHASIS.sub("", answer or "").strip()
    leading = _LEADING.match(text)
    if leading:
        letter = next(group for group in leading.groups() if group).upper()
        return letter if letter in letters else None
    stated = {next(group for group in match.groups() if group).upper() for match in _STATED.finditer(text)}
    stated &= set(letters)
    return stated.pop() if len(stated) == 1 else None


def likelihood_choice(option_logprobs: Sequence[float], option_tokens: Sequence[int] | None = None) -> int:
    """Index of the most likely option.

    With ``option_tokens`` (tokens of each option's text) the log-likelihood is
    divided by the token count first — the mean log-probability per token — so
    an option is not favoured for being short, nor for being made of words the
    tokenizer happens to merge into fewer pieces. Ties go to the first.
    """
    if not option_logprobs:
        raise ValueError("no options to choose from")
    scores = list(option_logprobs)
    if option_tokens is not None:
        scores = [logprob / max(count, 1) for logprob, count in zip(scores, option_tokens, strict=True)]
    return max(range(len(scores)), key=lambda index: (scores[index], -index))


def normalize_answer(text: str) -> list[str]:
    """Lower-case words without punctuation and articles (the SQuAD normalisation)."""
    lowered = (text or "").lower()
    no_punctuation = "".join(" " if char in string.punctuation else char for char in lowered)
    return [word for word in no_punctuation.split() if word not in {"a", "an", "the"}]


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of word precision and recall after normalisation (0 … 1)."""
    predicted, expected = normalize_answer(prediction), normalize_answer(reference)
    if not predicted or not expected:
        return float(predicted == expected)
    overlap = sum((Counter(predicted) & Counter(expected)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(expected)
    return 2 * precision * recall / (precision + recall)


AGREEMENT_F1 = 0.5
"""Token F1 at which a free answer is said to agree with the reference (Compare's ✓ / ✗)."""


def reference_words(kind: str, answer: str, reference: str) -> str:
    """What a free answer to a held-out question is compared with: the reference text (mc: the right option's)."""
    return reference or ("" if kind == "mc" else answer)


def agrees_with_reference(answer: str, reference: str) -> tuple[bool, float]:
    """Whether a free answer says what the reference says (token F1 ≥ ``AGREEMENT_F1``), and the F1."""
    f1 = token_f1(answer, reference)
    return f1 >= AGREEMENT_F1, f1
