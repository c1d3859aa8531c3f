"""Scoring math on hand-made inputs with known answers."""
from __future__ import annotations

import math

import pytest

from doctune.core.evaluate.scoring import likelihood_choice, normalize_answer, parse_choice, token_f1
from doctune.core.evaluate.stats import mcnemar_exact, mean_interval, paired_bootstrap, wilson_interval


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("B", "B"),
        ("(B)", "B"),
        ("B.", "B"),
        ("b)", "B"),
        (" C ", "C"),
        ("The answer is B.", "B"),
        ("the answer is (c)", "C"),
        ("Answer: D", "D"),
        ("**Answer:** A", "A"),
        ("B. The lighthouse keeper", "B"),
        ("(A) Marrow Bay", "A"),
        ("I choose C because the text says so.", "C"),
        ("The correct option is D", "D"),
        ("A man walked to the harbour.", None),
        ("The answer is a river.", None),
        ("I do not know.", None),
        ("", None),
        ("E", None),  # not one of four options
        ("Option A is wrong; the answer is B.", None),  # two letters stated: unparseable
    ],
)
def test_parse_choice(answer, expected):
    assert parse_choice(answer, 4) == expected


def test_parse_choice_with_more_options():
    assert parse_choice("E", 5) == "E"


def test_likelihood_choice_raw_and_length_normalised():
    assert likelihood_choice([-4.0, -1.5, -2.0, -9.0]) == 1
    # Raw sum prefers the short option; per token the long one (−6/12 = −0.5 > −2/2 = −1) wins.
    assert likelihood_choice([-2.0, -6.0], [2, 12]) == 1
    assert likelihood_choice([-2.0, -6.0]) == 0
    assert likelihood_choice([-1.0, -1.0]) == 0  # ties go to the first
    with pytest.raises(ValueError):
        likelihood_choice([])


def test_token_f1_known_values():
    assert normalize_answer("The Cat, sat!") == ["cat", "sat"]
    assert token_f1("the cat sat", "The cat sat.") == 1.0
    assert token_f1("dog", "cat") == 0.0
    # prediction 4 words, reference 2, overlap 2: P=0.5, R=1 → F1=2/3
    assert math.isclose(token_f1("cat sat on mat", "cat sat"), 2 / 3)
    assert math.isclose(token_f1("red red blue", "red blue blue green"), 2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert token_f1("", "") == 1.0
    assert token_f1("the", "cat") == 0.0


def test_wilson_interval_known_values():
    interval = wilson_interval(8, 10)
    assert interval.low == pytest.approx(0.4902, abs=1e-4)
    assert interval.high == pytest.approx(0.9433, abs=1e-4)
    # closed form at p̂ = 0: upper = z²/(n+z²)
    z2 = 1.959963984540054**2
    assert wilson_interval(0, 20).low == pytest.approx(0.0, abs=1e-12)
    assert wilson_interval(0, 20).high == pytest.approx(z2 / (20 + z2), rel=1e-9)
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


@pytest.mark.parametrize("successes, trials", [(0, 1), (1, 1), (3, 7), (8, 10), (50, 100), (199, 200), (0, 500)])
def test_wilson_interval_agrees_with_scipy(successes, trials):
    stats = pytest.importorskip("scipy.stats")
    expected = stats.binomtest(successes, trials).proportion_ci(confidence_level=0.95, method="wilson")
    interval = wilson_interval(successes, trials)
    assert interval.low == pytest.approx(expected.low, abs=1e-9)
    assert interval.high == pytest.approx(expected.high, abs=1e-9)


@pytest.mark.parametrize("only_a, only_b", [(10, 2), (0, 5), (7, 7), (30, 12), (1, 0)])
def test_mcnemar_exact_agrees_with_scipy_binomial_test(only_a, only_b):
    stats = pytest.importorskip("scipy.stats")
    a = [True] * only_a + [False] * only_b + [True] * 3
    b = [False] * only_a + [True] * only_b + [True] * 3
    expected = stats.binomtest(only_a, only_a + only_b, 0.5).pvalue
    assert mcnemar_exact(a, b).p_value == pytest.approx(expected, rel=1e-9)


def test_mcnemar_exact_known_value():
    # 10 questions only A gets right, 2 only B: p = 2·P(X ≤ 2 | n=12, ½) = 2·79/4096
    a = [True] * 10 + [False] * 2 + [True] * 5 + [False] * 3
    b = [False] * 10 + [True] * 2 + [True] * 5 + [False] * 3
    result = mcnemar_exact(a, b)
    assert (result.only_a, result.only_b) == (10, 2)
    assert result.p_value == pytest.approx(158 / 4096, rel=1e-12)
    assert mcnemar_exact([True, False], [True, False]).p_value == 1.0


def test_paired_bootstrap_detects_a_clear_difference_and_not_a_null_one():
    a = [1.0] * 30 + [0.0] * 10
    b = [0.0] * 30 + [1.0] * 2 + [0.0] * 8
    clear = paired_bootstrap(a, b, resamples=4000)
    assert clear.difference == pytest.approx(28 / 40)
    assert clear.interval.low > 0.4 and clear.interval.high <= 1.0
    assert clear.p_value < 0.001
    same = paired_bootstrap(a, a)
    assert same.difference == 0 and same.p_value == 1.0
    assert paired_bootstrap([], []) is None


def test_mean_interval_brackets_the_mean():
    values = [0.2, 0.4, 0.6, 0.8] * 10
    interval = mean_interval(values)
    assert interval.low < 0.5 < interval.high
    assert mean_interval([]) is None
