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
    """An immutable group of sets indexed for Jaccard ≥ t search by *prefix filtering* (the All-Pairs join), with
    the *positional filter* of PPJoin.

    With every set's elements in one fixed order, two sets with Jaccard ≥ t share at least one element among the
    first ``|s| - ceil(t·|s|) + 1`` of each. Ordering by rarity within the block (elements it does not hold come
    first: they match nothing) puts rare elements in the prefixes, so each probe meets few candidates. The first
    element a probe and a candidate share is met first; after it they can share at most the shorter of their
    remainders, so a candidate met late in both orders (on a common word) is dropped without computing anything.
    Every candidate left is checked exactly.
    """

    def __init__(self, sets: list[frozenset], threshold: float) -> None:
        self.threshold = threshold
        self.sets = sets
        frequency: dict[Hashable, int] = defaultdict(int)
        for elements in sets:
            for element in elements:
                frequency[element] += 1
        self._frequency = frequency
        self._by_element: dict[Hashable, list[tuple[int, int]]] = defaultdict(list)
        for index, elements in enumerate(sets):
            for position, element in enumerate(self._prefix(elements)):
                self._by_element[element].append((index, position))

    def _prefix(self, elements: frozenset) -> list[Hashable]:
        size = len(elements) - math.ceil(self.threshold * len(elements) - 1e-9) + 1
        return sorted(elements, key=lambda e: (self._frequency.get(e, 0), _stable_rank(e)))[:size]

    def _overlap_needed(self, a: int, b: int) -> float:
        """Jaccard ≥ t between sets of sizes a and b needs at least t/(1+t)·(a+b) shared elements."""
        return self.threshold / (1 + self.threshold) * (a + b) - 1e-9

    def any_similar(self, probe: frozenset) -> bool:
        met: set[int] = set()
        for mine, element in enumerate(self._prefix(probe)):
            for index, theirs in self._by_element.get(element, ()):
                if index in met:
                    continue
                met.add(index)
                other = self.sets[index]
                most = 1 + min(len(probe) - mine - 1, len(other) - theirs - 1)
                if most >= self._overlap_needed(len(probe), len(other)) and jaccard(probe, other) >= self.threshold:
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

    @classmethod
    def of(cls, sets: Iterable[Iterable[Hashable]], threshold: float) -> SimilarSets:
        """An index of sets known at once, in one block: every set is indexed once, in one rarity order."""
        index = cls(threshold)
        kept = [frozenset(elements) for elements in sets]
        index._has_empty = any(not elements for elements in kept)
        if any(kept):
            index._blocks.append(_PrefixBlock([elements for elements in kept if elements], threshold))
        return index

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
        contents = (set(words(question)) - STOPWORDS for question in questions)
        # a question of stop words alone is caught by the exact check or not at all
        self._similar = SimilarSets.of((content for content in contents if content), threshold)

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
