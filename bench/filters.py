"""The synthesis filters at a high amplification target: near-duplicates and leakage over 100k items.

A source chunk that gets thousands of items, and a corpus of 100k training questions checked against the
held-out questions, must not cost quadratic time. The indexes (``SimilarSets``: prefix filtering, each
candidate checked exactly) are timed at 100k items; the baseline is comparing with every kept item, timed in
the same run on as many items as a few seconds allow, with the same verdicts. The ratio is the speed-up on those
items. Target: 100k items through the near-duplicate filter of one source and 100k × 100k leakage checks each
under 30 s on this machine, with verdicts identical to the baseline. The items are deliberately alike (six
subjects, eight places, numbers), the hard case for prefix filtering: their common words reach many candidates.
"""
from __future__ import annotations

import json
import random
import time

from doctune.core.synth.filters import STOPWORDS, DuplicateIndex, LeakageIndex, jaccard, trigrams, words

ITEMS = 100_000
BASELINE_ITEMS = 4_000
TARGET_S = 30.0
SUBJECTS = ("lighthouse keeper", "ferry pilot", "clockmaker", "archivist", "harbour master", "glassblower")
PLACES = ("Velmora", "Draskey", "Ossenby", "Talvik", "Brennach", "Corvale", "Hestmoor", "Quillan")


def items(n: int, seed: int = 0) -> list[str]:
    """Synthetic answers that share most of their words, as a recipe's items about one chunk do."""
    rng = random.Random(seed)
    return [f"The {rng.choice(SUBJECTS)} of {rng.choice(PLACES)} recorded {rng.randrange(10_000)} storms "
            f"between {rng.randrange(1700, 1900)} and {rng.randrange(1900, 2000)}, item {i}." for i in range(n)]


def questions(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"How many storms did the {rng.choice(SUBJECTS)} of {rng.choice(PLACES)} record by "
            f"{rng.randrange(1700, 2000)} (case {rng.randrange(10**6)})?" for _ in range(n)]


def near_duplicates_indexed(texts: list[str]) -> list[str | None]:
    index = DuplicateIndex(0.7)
    return [index.check_and_add("chunk", text) for text in texts]


def near_duplicates_every_pair(texts: list[str]) -> list[str | None]:
    kept: list[frozenset] = []
    verdicts: list[str | None] = []
    for text in texts:
        shingles = trigrams(text)
        if any(jaccard(shingles, other) >= 0.7 for other in kept):
            verdicts.append("near-duplicate")
        else:
            kept.append(shingles)
            verdicts.append(None)
    return verdicts


def leakage_indexed(training: list[str], probes: list[str]) -> list[bool]:
    index = LeakageIndex(training, 0.6)
    return [index.leaks(question) for question in probes]


def leakage_every_pair(training: list[str], probes: list[str]) -> list[bool]:
    sets = [set(words(q)) - STOPWORDS for q in training]
    return [any(jaccard(set(words(q)) - STOPWORDS, other) >= 0.6 for other in sets if other) for q in probes]


def timed(function, *args) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def main() -> None:
    texts = items(ITEMS)
    dup_s, _ = timed(near_duplicates_indexed, texts)
    dup_small_s, dup_small = timed(near_duplicates_indexed, texts[:BASELINE_ITEMS])
    dup_base_s, dup_base = timed(near_duplicates_every_pair, texts[:BASELINE_ITEMS])
    training, probes = questions(ITEMS, 1), questions(ITEMS, 2)
    leak_s, _ = timed(leakage_indexed, training, probes)
    leak_small_s, leak_small = timed(leakage_indexed, training[:BASELINE_ITEMS], probes[:BASELINE_ITEMS])
    leak_base_s, leak_base = timed(leakage_every_pair, training[:BASELINE_ITEMS], probes[:BASELINE_ITEMS])
    same = dup_small == dup_base and leak_small == leak_base
    print(f"near-duplicates: {ITEMS} items {dup_s:.1f} s; {BASELINE_ITEMS} items {dup_small_s:.2f} s indexed, "
          f"{dup_base_s:.2f} s every pair")
    print(f"leakage: {ITEMS} x {ITEMS} questions {leak_s:.1f} s; {BASELINE_ITEMS} x {BASELINE_ITEMS} "
          f"{leak_small_s:.2f} s indexed, {leak_base_s:.2f} s every pair")
    print(json.dumps({
        "bench": "filters", "items": ITEMS, "near_duplicate_s": round(dup_s, 2), "leakage_s": round(leak_s, 2),
        "baseline_items": BASELINE_ITEMS, "near_duplicate_baseline_s": round(dup_base_s, 2),
        "near_duplicate_indexed_s": round(dup_small_s, 3), "leakage_baseline_s": round(leak_base_s, 2),
        "leakage_indexed_s": round(leak_small_s, 3),
        "ratio_near_duplicate": round(dup_base_s / max(dup_small_s, 1e-9), 1),
        "ratio_leakage": round(leak_base_s / max(leak_small_s, 1e-9), 1),
        "same_verdicts": same, "target_s": TARGET_S,
        "meets_target": same and dup_s < TARGET_S and leak_s < TARGET_S,
    }))


if __name__ == "__main__":
    main()
