"""Quality filters for generated items: duplicates, near-duplicates, grounding, length, leakage.

Each check returns a reason string when the item must be dropped (the
pipeline counts drops by reason) or ``None`` when it passes.
"""
from __future__ import annotations

import hashlib
import math
import re
import threading
from collections import defaultdict
from collections.abc import Hashable, Iterable

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


def _stable_rank(element: Hashable) -> str:
    """A tie-break the same in every run and process (``hash`` of a str is salted per process)."""
    return hashlib.blake2b(repr(element).encode("utf-8"), digest_size=8).hexdigest()


class _PrefixBlock:
    """An immutable group of sets indexed for Jaccard ≥ t search by *prefix filtering* (the All-Pairs join).

    With every set's elements in one fixed order, two sets with Jaccard ≥ t share at least one element among the
    first ``|s| - ceil(t·|s|) + 1`` of each. Ordering by rarity within the block (elements it does not hold come
    first: they match nothing) puts rare elements in the prefixes, so each probe meets few candidates; each
    candidate is then checked exactly.
    """

    def __init__(self, sets: list[frozenset], threshold: float) -> None:
        self.threshold = threshold
        self.sets = sets
        frequency: dict[Hashable, int] = defaultdict(int)
        for elements in sets:
            for element in elements:
                frequency[element] += 1
        self._frequency = frequency
        self._by_element: dict[Hashable, list[int]] = defaultdict(list)
        for index, elements in enumerate(sets):
            for element in self._prefix(elements):
                self._by_element[element].append(index)

    def _prefix(self, elements: frozenset) -> list[Hashable]:
        size = len(elements) - math.ceil(self.threshold * len(elements) - 1e-9) + 1
        return sorted(elements, key=lambda e: (self._frequency.get(e, 0), _stable_rank(e)))[:size]

    def any_similar(self, probe: frozenset) -> bool:
        checked: set[int] = set()
        for element in self._prefix(probe):
            for index in self._by_element.get(element, ()):
                if index not in checked:
                    checked.add(index)
                    if jaccard(probe, self.sets[index]) >= self.threshold:
                        return True
        return False


class SimilarSets:
    """Sets, and a question: does any of them have a Jaccard similarity ≥ ``threshold`` with this one?

    Comparing with every set is quadratic over a corpus (100k items: 5·10^9 pairs). Sets go to a small buffer,
    compared one by one; a full buffer becomes a ``_PrefixBlock``, and blocks of equal size merge into one twice
    as large (as a binary counter carries), so each set is re-indexed about log(n) times. The answer is exactly
    that of comparing with every set.
    """

    BUFFER = 64

    def __init__(self, threshold: float) -> None:
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], not {threshold}")
        self.threshold = threshold
        self._buffer: list[frozenset] = []
        self._blocks: list[_PrefixBlock] = []
        self._has_empty = False

    def add(self, elements: Iterable[Hashable]) -> None:
        kept = frozenset(elements)
        if not kept:
            self._has_empty = True
            return
        self._buffer.append(kept)
        if len(self._buffer) >= self.BUFFER:
            merged = self._buffer
            self._buffer = []
            while self._blocks and len(self._blocks[-1].sets) <= len(merged):
                merged = self._blocks.pop().sets + merged
            self._blocks.append(_PrefixBlock(merged, self.threshold))

    def any_similar(self, elements: Iterable[Hashable]) -> bool:
        probe = frozenset(elements)
        if not probe:
            return self._has_empty  # two empty sets are equal (Jaccard 1); an empty one is like no other
        return (any(jaccard(probe, other) >= self.threshold for other in self._buffer)
                or any(block.any_similar(probe) for block in self._blocks))


class DuplicateIndex:
    """Exact duplicates across the whole corpus; near-duplicates among items of the same source.

    Near-duplicate detection compares word trigrams with the items already kept for the same source chunk (the
    place duplicates come from), through a ``SimilarSets`` index per source, so a source with thousands of items
    (a high amplification target) costs about linear time, not quadratic.
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._exact: set[str] = set()
        self._by_source: dict[str, SimilarSets] = defaultdict(lambda: SimilarSets(threshold))
        self._lock = threading.Lock()

    def check_and_add(self, source: str, text: str) -> str | None:
        digest = hashlib.sha256(normalized(text).encode("utf-8")).hexdigest()
        shingles = trigrams(text)
        with self._lock:
            if digest in self._exact:
                return "duplicate"
            if self._by_source[source].any_similar(shingles):
                return "near-duplicate"
            self._exact.add(digest)
            self._by_source[source].add(shingles)
        return None


class LeakageIndex:
    """Questions on one side (training or evaluation) to check the other side's questions against.

    Content-word sets in a ``SimilarSets`` index: checking N questions against M costs about N + M, not N × M.
    """

    def __init__(self, questions: list[str], threshold: float) -> None:
        self.threshold = threshold
        self._exact = {normalized(question) for question in questions}
        self._similar = SimilarSets(threshold)
        for question in questions:
            content = set(words(question)) - STOPWORDS
            if content:  # a question of stop words alone is caught by the exact check or not at all
                self._similar.add(content)

    def leaks(self, question: str) -> bool:
        if normalized(question) in self._exact:
            return True
        mine = set(words(question)) - STOPWORDS
        return bool(mine) and self._similar.any_similar(mine)


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
