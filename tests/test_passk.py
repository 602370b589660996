"""The statistics of evaluation (trainer_client/stats.py) against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from trainer_client.stats import bootstrap_mean_difference, mcnemar_exact, paired_bootstrap, pass_at_k


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (1, 1, 1, 1.0),
        (1, 0, 1, 0.0),
        (10, 3, 1, 0.3),  # pass@1 is c/n
        (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
        (4, 1, 4, 1.0),  # n - c < k: every draw of 4 holds the passing one
        (6, 0, 3, 0.0),
        (20, 1, 10, 0.5),  # one passing sample in 20, 10 drawn: 1 - C(19,10)/C(20,10) = 1/2
    ],
)
def test_pass_at_k_by_hand(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_matches_the_binomial_form_at_large_n() -> None:
    for n, c, k in ((200, 7, 10), (200, 150, 100), (1000, 1, 1)):
        assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), rel=1e-9)


def test_pass_at_k_refuses_k_above_n_and_bad_counts() -> None:
    with pytest.raises(ValueError, match="sample at least k"):
        pass_at_k(3, 1, 5)
    with pytest.raises(ValueError, match="0 <= c <= n"):
        pass_at_k(3, 4, 1)


def test_paired_bootstrap_of_constant_differences_is_a_point() -> None:
    ci = paired_bootstrap([0, 0, 1], [1, 1, 2], resamples=500)
    assert (ci.estimate, ci.low, ci.high) == (1.0, 1.0, 1.0)


def test_paired_bootstrap_on_two_problems() -> None:
    """Differences (1, 0): a resample's mean is 0, 1/2 or 1 with probability 1/4, 1/2, 1/4;
    both tails hold more than 2.5%, so the 95% interval is [0, 1]."""
    ci = paired_bootstrap([0, 0], [1, 0], resamples=10_000, seed=1)
    assert (ci.estimate, ci.low, ci.high) == (0.5, 0.0, 1.0)


def test_paired_bootstrap_on_four_problems() -> None:
    """Differences (0, 0, 0, 1): the resampled count of ones is Binomial(4, 1/4), P(0) = 0.32
    (lower bound 0), P(<= 2) = 0.949 < 0.975 < P(<= 3) = 0.996 (upper bound 3/4)."""
    ci = paired_bootstrap([1, 0, 0, 0], [1, 0, 0, 1], resamples=10_000, seed=0)
    assert (ci.estimate, ci.low, ci.high) == (0.25, 0.0, 0.75)
    assert not ci.excludes_zero()


def test_paired_bootstrap_is_seeded_and_pairs_by_position() -> None:
    before, after = [1, 1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0, 0, 0]  # one problem gained, none lost
    paired = paired_bootstrap(before, after, seed=7, resamples=2000)
    assert paired_bootstrap(before, after, seed=7, resamples=2000) == paired
    assert paired.estimate == pytest.approx(1 / 8) and paired.low == 0.0  # no resample can go below 0
    # The same values with the pairs broken (4 lost, 5 gained): the same mean, a far wider interval.
    broken = paired_bootstrap(before, list(reversed(after)), seed=7, resamples=2000)
    assert broken.estimate == pytest.approx(1 / 8) and broken.low < -0.25
    with pytest.raises(ValueError, match="pair them"):
        paired_bootstrap([0, 1], [1])


def test_bootstrap_mean_difference_of_independent_samples() -> None:
    # Each side constant: every resample gives the same difference.
    ci = bootstrap_mean_difference([0.25, 0.25], [0.5, 0.5, 0.5], resamples=200)
    assert (ci.estimate, ci.low, ci.high) == (0.25, 0.25, 0.25)
    # first = (0, 1): its resampled mean is 0, 1/2, 1 w.p. 1/4, 1/2, 1/4; second constant 1.
    ci = bootstrap_mean_difference([0, 1], [1], resamples=10_000, seed=3)
    assert (ci.estimate, ci.low, ci.high) == (0.5, 0.0, 1.0)


@pytest.mark.parametrize(
    ("b", "c", "p"),
    [
        (0, 0, 1.0),
        (1, 0, 1.0),  # 2 * P(X <= 0 | n=1) = 2 * 1/2
        (0, 5, 0.0625),  # 2 / 2^5
        (0, 6, 0.03125),  # 2 / 2^6
        (2, 8, 0.109375),  # 2 * (1 + 10 + 45) / 1024
        (8, 2, 0.109375),  # symmetric
        (5, 5, 1.0),
        (3, 10, 2 * (1 + 13 + 78 + 286) / 8192),  # 0.0923
    ],
)
def test_mcnemar_exact_by_hand(b: int, c: int, p: float) -> None:
    assert mcnemar_exact(b, c) == pytest.approx(p, abs=1e-12)
