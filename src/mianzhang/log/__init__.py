"""Layer 3: the event log (protocol, memory and Redis backends, serving as SSE)."""

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

__all__ = [
    "EventLog",
    "LogEvent",
    "Reset",
    "ResetReason",
    "StreamInfo",
    "StreamState",
    "format_id",
    "parse_id",
]
