"""When and how long to wait before retrying an upstream request. No I/O.

The policy is the official ``openai`` Python client's: retry on 408, 409, 429, any 5xx, on
connection errors and on timeouts; obey an ``x-should-retry: true|false`` header; honour
``retry-after-ms`` / ``retry-after`` (seconds or an HTTP date) when it asks for more than 0 and
at most 120 s, and do not retry at all when it asks for more; otherwise back off exponentially
from ``initial_delay`` (0.5 s) doubling up to ``max_delay`` (8 s), minus up to 25 % jitter.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = ["RetryPolicy", "parse_retry_after", "retryable_status"]

MAX_RETRY_AFTER = 120.0


def retryable_status(status_code: int, headers: Mapping[str, str] | None = None) -> bool:
    """Whether a response with this status may succeed when sent again.

    ``x-should-retry`` overrides the status; a ``retry-after`` beyond 120 s forbids retrying.
    """
    if headers is not None:
        retry_after = parse_retry_after(headers)
        if retry_after is not None and retry_after > MAX_RETRY_AFTER:
            return False
        should = headers.get("x-should-retry")
        if should == "true":
            return True
        if should == "false":
            return False
    return status_code in (408, 409, 429) or status_code >= 500


def parse_retry_after(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds the server asked to wait, from ``retry-after-ms`` or ``retry-after``.

    ``retry-after`` may be a number of seconds or an HTTP date. Unparseable values give
    ``None``; a value overflowing to infinity is treated as "too long" (above 120 s).
    """
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            delay = float(value)
        except ValueError:
            continue
        if math.isnan(delay):
            continue
        if math.isinf(delay):
            return MAX_RETRY_AFTER + 1
        return delay / divisor
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return float(email.utils.mktime_tz(parsed) - now())
    except (TypeError, ValueError, OverflowError):
        return None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry one upstream before the first token.

    ``max_retries`` retries follow the first attempt (so at most ``max_retries + 1`` requests).
    """

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, not {self.max_retries!r}")
        if not (0 <= self.initial_delay <= self.max_delay):
            raise ValueError("need 0 <= initial_delay <= max_delay")

    def delay(self, retries_done: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retries_done + 1``.

        A server-given ``retry_after`` in (0, 120] is used as is; otherwise
        ``min(initial * 2**retries_done, max) * (1 - 0.25 * random())``.
        """
        if retry_after is not None and 0 < retry_after <= MAX_RETRY_AFTER:
            return retry_after
        base = min(self.initial_delay * 2.0 ** min(retries_done, 1000), self.max_delay)
        return max(0.0, base * (1 - 0.25 * self.random()))
