"""How long the client waits before reconnecting. Pure arithmetic, no I/O."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backoff"]

_MAX_EXPONENT = 64  # 2.0 ** 64 s is already centuries: no float overflow after days of failures


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnection delay: the SSE reconnection time, backed off on consecutive failures.

    ``delay(reconnection_time, failures)``:

    * ``failures == 0`` (the previous connection delivered an event, or the server asked for a
      reconnect): exactly ``reconnection_time``, as a browser's ``EventSource`` waits;
    * ``failures == n > 0`` (n connections in a row failed or ended without an event): "full
      jitter" between the reconnection time and the capped exponential,
      ``uniform(t, max(t, min(max_delay, max(t, min_step) * multiplier ** n)))``. The
      server's reconnection time is a floor, never undercut; ``min_step`` keeps a server's
      ``retry: 0`` from turning into a tight reconnect loop while it is down.

    ``jitter=False`` takes the upper bound instead of a random point. ``uniform`` is the random
    source (``random.uniform`` by default); tests inject a deterministic one.
    """

    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: bool = True
    min_step: float = 0.1
    uniform: Callable[[float, float], float] = random.uniform

    def __post_init__(self) -> None:
        if not self.max_delay > 0:
            raise ValueError(f"max_delay must be positive, got {self.max_delay!r}")
        if not self.multiplier >= 1:
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier!r}")
        if not self.min_step > 0:
            raise ValueError(f"min_step must be positive, got {self.min_step!r}")

    def bounds(self, reconnection_time: float, failures: int) -> tuple[float, float]:
        """The interval the delay is drawn from (both ends equal when ``failures == 0``)."""
        if reconnection_time < 0:
            raise ValueError("reconnection_time must not be negative")
        if failures <= 0:
            return reconnection_time, reconnection_time
        step = max(reconnection_time, self.min_step)
        cap = min(self.max_delay, step * self.multiplier ** min(failures, _MAX_EXPONENT))
        return reconnection_time, max(reconnection_time, cap)

    def delay(self, reconnection_time: float, failures: int) -> float:
        """Seconds to wait before the next attempt (see the class docstring)."""
        low, high = self.bounds(reconnection_time, failures)
        if low == high or not self.jitter:
            return high
        return min(high, max(low, self.uniform(low, high)))
