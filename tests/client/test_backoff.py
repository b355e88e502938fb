"""Backoff arithmetic: spec reconnection time first, then capped exponential full jitter."""

from __future__ import annotations

import random

import pytest

from mianzhang.client import Backoff


def test_no_failure_waits_exactly_the_reconnection_time() -> None:
    backoff = Backoff(uniform=lambda lo, hi: pytest.fail("no jitter without failures"))
    assert backoff.delay(3.0, 0) == 3.0
    assert backoff.delay(0.0, 0) == 0.0


def test_upper_bound_doubles_up_to_the_cap() -> None:
    backoff = Backoff(max_delay=10.0, uniform=lambda lo, hi: hi)
    assert [backoff.delay(1.0, n) for n in range(1, 7)] == [2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_jitter_is_drawn_between_the_reconnection_time_and_the_bound() -> None:
    calls: list[tuple[float, float]] = []

    def uniform(lo: float, hi: float) -> float:
        calls.append((lo, hi))
        return lo

    backoff = Backoff(max_delay=30.0, uniform=uniform)
    assert [backoff.delay(3.0, n) for n in (1, 2, 3, 4)] == [3.0] * 4
    assert calls == [(3.0, 6.0), (3.0, 12.0), (3.0, 24.0), (3.0, 30.0)]


def test_real_jitter_stays_in_bounds_and_varies() -> None:
    rng = random.Random(7)
    backoff = Backoff(max_delay=30.0, uniform=rng.uniform)
    delays = [backoff.delay(1.0, 3) for _ in range(200)]
    assert all(1.0 <= d <= 8.0 for d in delays)
    assert len(set(delays)) > 100


def test_server_retry_above_the_cap_is_still_honoured() -> None:
    backoff = Backoff(max_delay=5.0, uniform=lambda lo, hi: hi)
    assert backoff.delay(60.0, 4) == 60.0


def test_retry_zero_still_backs_off_from_min_step() -> None:
    backoff = Backoff(min_step=0.1, uniform=lambda lo, hi: hi)
    assert [backoff.delay(0.0, n) for n in (1, 2, 3)] == pytest.approx([0.2, 0.4, 0.8])


def test_without_jitter_the_bound_is_used() -> None:
    assert Backoff(jitter=False, max_delay=100).delay(1.0, 3) == 8.0


def test_many_failures_do_not_overflow() -> None:
    assert Backoff(uniform=lambda lo, hi: hi).delay(3.0, 10_000) == 30.0


@pytest.mark.parametrize(
    "kwargs", [{"max_delay": 0}, {"multiplier": 0.5}, {"min_step": 0}, {"max_delay": -1}]
)
def test_invalid_settings_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)  # type: ignore[arg-type]
