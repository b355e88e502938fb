"""Layer 3: the event log (protocol, memory and Redis backends, serving as SSE).

``RedisEventLog`` is imported lazily (on first attribute access) so that ``mianzhang.log``
imports without the ``redis`` extra installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._common import LogStatistics
from ._holder import LeaseHolder
from ._producers import LogEntry, ProducerRunner
from ._protocol import (
    EventLog,
    LogEvent,
    Reset,
    ResetReason,
    StreamInfo,
    StreamState,
    format_id,
    parse_id,
)
from ._sweeper import LeaseSweeper
from .memory import MemoryEventLog

if TYPE_CHECKING:
    from .redis import RedisEventLog

__all__ = [
    "EventLog",
    "LeaseHolder",
    "LeaseSweeper",
    "LogEntry",
    "LogEvent",
    "LogStatistics",
    "MemoryEventLog",
    "ProducerRunner",
    "RedisEventLog",
    "Reset",
    "ResetReason",
    "StreamInfo",
    "StreamState",
    "format_id",
    "parse_id",
]


def __getattr__(name: str) -> Any:
    if name == "RedisEventLog":
        try:
            from .redis import RedisEventLog
        except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
            raise ImportError(
                "RedisEventLog needs the redis extra: pip install 'mianzhang[redis]'"
            ) from exc
        return RedisEventLog
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
