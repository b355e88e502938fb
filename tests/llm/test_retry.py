"""The retry policy matches the official openai client's."""

from __future__ import annotations

import email.utils

import pytest

from mianzhang.llm import RetryPolicy, parse_retry_after, retryable_status


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 599])
def test_retryable_statuses(status: int) -> None:
    assert retryable_status(status)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_not_retryable_statuses(status: int) -> None:
    assert not retryable_status(status)


def test_x_should_retry_overrides_the_status() -> None:
    assert retryable_status(400, {"x-should-retry": "true"})
    assert not retryable_status(503, {"x-should-retry": "false"})


def test_retry_after_beyond_two_minutes_forbids_retrying() -> None:
    assert not retryable_status(429, {"retry-after": "121"})
    assert retryable_status(429, {"retry-after": "120"})


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "100", "retry-after": "9"}) == 0.1
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({"retry-after": "1e999"}) == 121.0  # overflow: "too long"
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=lambda: 1_000_000.0) == 30.0


def test_backoff_doubles_up_to_the_cap_with_at_most_25_percent_jitter() -> None:
    exact = RetryPolicy(random=lambda: 0.0)
    assert [exact.delay(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    most = RetryPolicy(random=lambda: 0.999999)
    assert most.delay(0) == pytest.approx(0.375, rel=1e-4)
    assert most.delay(5) == pytest.approx(6.0, rel=1e-4)


def test_server_delay_is_used_when_in_range() -> None:
    policy = RetryPolicy(random=lambda: 0.0)
    assert policy.delay(0, retry_after=2.5) == 2.5
    assert policy.delay(0, retry_after=0) == 0.5  # not > 0: computed backoff
    assert policy.delay(1, retry_after=500) == 1.0  # beyond 120 s: computed backoff


def test_invalid_policy_is_rejected() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError):
        RetryPolicy(initial_delay=9, max_delay=8)
