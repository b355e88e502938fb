"""Counters of the jobs of one app, for ``/metrics`` (updated on the event loop only)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["JobStatistics"]


@dataclass(slots=True)
class JobStatistics:
    """``submitted``: jobs accepted by this instance; ``running``: jobs its runners run now;
    ``finished``: jobs its runners ended, by final state (``succeeded``, ``failed``,
    ``cancelled``). Jobs run by ``mianzhang worker`` processes count there, not here."""

    submitted: int = 0
    running: int = 0
    finished: dict[str, int] = field(default_factory=dict)
