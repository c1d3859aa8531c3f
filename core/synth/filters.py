"""Quality filters for generated items: duplicates, near-duplicates, grounding, length, leakage.

Each check returns a reason string when the item must be dropped (the
pipeline counts drops by reason) or ``None`` when it passes.
"""
from __future__ import annotations

import hashlib
import re
import threading
from collections import defaultdict

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
STOPWORDS = frozenset("""
a about above after again against all also although among an and any are as at be because been before being
below between both but by can could did do does doing down during each either else ever every few for from
further had has have having he her here hers him his how however i if in into is it its itself just least
less made make many may me might more most much must my neither no nor not now of off on once one only or
other our ours out over own per rather same shall she should since so some such than that the their theirs
them then there these they this those though through thus to too under until up upon us very was we were what
when where whether which while who whom whose why will with within without would yet you your yours
""".split())


def words(text: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(text)]


def normalized(text: str) -> str:
    return " ".join(words(text))


def key_terms(text: str) -> set[str]:
    """Content words (not stop words, at least four letters) and every number."""
    return {word for word in words(text) if word.isdigit() or (len(word) >= 4 and word not in STOPWORDS)}


def grounding_share(answer: str, source: str) -> float:
    """Share of the answer's key terms found in the source (1.0 when the answer has none)."""
    terms = key_terms(answer)
    if not terms:
        return 1.0
    source_words = set(words(source))
    return sum(term in source_words for term in terms) / len(terms)


def trigrams(text: str) -> frozenset[tuple[str, ...]]:
    tokens = words(text)
    if len(tokens) < 3:
        return frozenset({tuple(tokens)})
    return frozenset(zip(tokens, tokens[1:], tokens[2:]))


def jaccard(a: frozenset | set, b: frozenset | set) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


class DuplicateIndex:
    """Exact duplicates across the whole corpus; near-duplicates among items of the same source.

    Near-duplicate detection compares word trigrams with the items already
    kept for the same source chunk (the place duplicates come from), which
    keeps the cost linear in the corpus.
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._exact: set[str] = set()
        self._by_source: dict[str, list[frozenset]] = defaultdict(list)
        self._lock = threading.Lock()

    def check_and_add(self, source: str, text: str) -> str | None:
        digest = hashlib.sha256(normalized(text).encode("utf-8")).hexdigest()
        shingles = trigrams(text)
        with self._lock:
            if digest in self._exact:
                return "duplicate"
            if any(jaccard(shingles, seen) >= self.threshold for seen in self._by_source[source]):
                return "near-duplicate"
            self._exact.add(digest)
            self._by_source[source].append(shingles)
        return None


class LeakageIndex:
    """Questions on one side (training or evaluation) to check the other side's questions against."""

    def __init__(self, questions: list[str], threshold: float) -> None:
        self.threshold = threshold
        self._exact = {normalized(question) for question in questions}
        self._sets = [set(words(question)) - STOPWORDS for question in questions]

    def leaks(self, question: str) -> bool:
        if normalized(question) in self._exact:
            return True
        mine = set(words(question)) - STOPWORDS
        return bool(mine) and any(jaccard(mine, other) >= self.threshold for other in self._sets if other)


_DEICTIC = re.compile(r"\b(?:the|this|that|above|given) (?:passage|text|excerpt|document|article|section|paragraph)\b",
                      re.IGNORECASE)


def refers_to_unseen_text(question: str) -> bool:
    """True for a question that points at "the passage" instead of naming its subject (not self-contained)."""
    return bool(_DEICTIC.search(question))


def length_problem(text: str, low: int, high: int, what: str) -> str | None:
    size = len(text.strip())
    if size < low:
        return f"{what} too short"
    if size > high:
        return f"{what} too long"
    return None
