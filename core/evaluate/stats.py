"""Statistics for the scoreboard: intervals for one system, tests between two.

Accuracy intervals are Wilson score intervals (well behaved at small n and at
0 % or 100 %, unlike the normal approximation). Two systems answering the same
questions are compared *paired*: McNemar's exact test on the questions where
exactly one of them is right, and a paired bootstrap of the difference in mean
score, which also works for partial scores such as token F1.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> Interval | None:
    """Wilson score interval for a proportion; None when there are no trials."""
    if trials <= 0:
        return None
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be within 0..{trials}, got {successes}")
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    share, z2 = successes / trials, z * z
    centre = (share + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z * math.sqrt(share * (1 - share) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(values: Sequence[float], confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> Interval | None:
    """Percentile bootstrap interval of a mean (for scores that are not 0/1)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return None
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    return Interval(float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail)))


@dataclass(frozen=True)
class McNemar:
    only_a: int  # questions A got right and B got wrong
    only_b: int
    p_value: float


def mcnemar_exact(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> McNemar:
    """Exact (binomial) McNemar test on paired right/wrong outcomes, two-sided."""
    if len(a_correct) != len(b_correct):
        raise ValueError("paired outcomes must have the same length")
    only_a = sum(1 for a, b in zip(a_correct, b_correct) if a and not b)
    only_b = sum(1 for a, b in zip(a_correct, b_correct) if b and not a)
    discordant = only_a + only_b
    if discordant == 0:
        return McNemar(only_a, only_b, 1.0)
    tail = sum(math.comb(discordant, k) for k in range(min(only_a, only_b) + 1))  # exact, in integers
    return McNemar(only_a, only_b, min(1.0, 2 * tail / 2**discordant))


@dataclass(frozen=True)
class PairedBootstrap:
    difference: float  # mean(A) - mean(B)
    interval: Interval
    p_value: float  # two-sided: how often the resampled difference falls on the other side of zero


def paired_bootstrap(
    a_scores: Sequence[float], b_scores: Sequence[float], confidence: float = 0.95, resamples: int = 10000, seed: int = 0
) -> PairedBootstrap | None:
    """Bootstrap of mean(A) − mean(B) resampling questions (both systems together)."""
    if len(a_scores) != len(b_scores):
        raise ValueError("paired scores must have the same length")
    differences = np.asarray(a_scores, dtype=float) - np.asarray(b_scores, dtype=float)
    if differences.size == 0:
        return None
    rng = np.random.default_rng(seed)
    means = differences[rng.integers(0, differences.size, size=(resamples, differences.size))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    observed = float(differences.mean())
    if np.all(means == 0):
        p_value = 1.0
    else:
        p_value = float(min(1.0, 2 * min(np.mean(means <= 0), np.mean(means >= 0))))
    return PairedBootstrap(
        observed, Interval(float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))), p_value
    )
