"""The benchmark's pooled percentiles: a percentile of all rounds' answers together."""

from __future__ import annotations

import pytest

from bench.load import Result, merge_rounds, pooled_percentile

POINTS = [1, 5, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 92, 94, 95, 96, 97, 98, 98.5, 99]
POINTS += [99.1, 99.2, 99.3, 99.4, 99.5, 99.6, 99.7, 99.8, 99.9, 99.95, 99.99]


def uniform_round(low_ms: float, high_ms: float, requests: int) -> Result:
    """A round whose answers took between low and high ms, evenly spread."""
    cdf = [(p, low_ms + (high_ms - low_ms) * p / 100) for p in POINTS]
    return Result(
        name="r",
        clients=8,
        requests=requests,
        seconds=8.0,
        p50_ms=low_ms + (high_ms - low_ms) / 2,
        p90_ms=low_ms + (high_ms - low_ms) * 0.9,
        p99_ms=low_ms + (high_ms - low_ms) * 0.99,
        max_ms=high_ms,
        statuses={200: requests},
        cdf=cdf,
    )


def test_identical_rounds_pool_to_the_same_distribution():
    rounds = [uniform_round(2, 12, 1000) for _ in range(3)]
    assert pooled_percentile(rounds, 99) == pytest.approx(11.9, abs=0.01)
    assert pooled_percentile(rounds, 50) == pytest.approx(7.0, abs=0.01)


def test_a_slow_round_weighs_by_its_share_of_the_answers():
    fast, slow = uniform_round(0, 10, 3000), uniform_round(10, 20, 1000)
    # 3,000 answers under 10 ms and 1,000 between 10 and 20 ms: the pooled p99 is the
    # 960th of the slow round's 1,000, its 96th percentile.
    assert pooled_percentile([fast, slow], 99) == pytest.approx(19.6, abs=0.05)
    assert pooled_percentile([fast, slow], 75) == pytest.approx(10.0, abs=0.05)
    assert pooled_percentile([fast, slow], 50) == pytest.approx(6.67, abs=0.05)


def test_merged_rounds_report_pooled_percentiles_and_keep_each_rounds_p99():
    fast, slow = uniform_round(0, 10, 3000), uniform_round(10, 20, 1000)
    merged = merge_rounds([fast, slow])
    assert merged.requests == 4000
    assert merged.p99_ms == pytest.approx(19.6, abs=0.05)
    assert merged.round_p99s == [fast.p99_ms, slow.p99_ms]
    assert max(merged.round_p99s) == pytest.approx(19.9)
