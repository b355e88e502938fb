"""What one atomic read of a stream returns, decoded from the ``READ`` / ``CREATE`` replies.

Pure functions, no I/O: the ids of decoded events use the stream's current epoch, so a
reader never mixes ids of two histories within one read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._protocol import LogEvent, StreamInfo, StreamState, format_id, parse_id

__all__ = ["Snapshot", "decode_events", "parse_snapshot", "position", "seq_of", "stream_info"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One atomic look at a stream: meta plus a range of events.

    ``last`` is the newest seq assigned in ``epoch`` (0 if none), ``first`` the oldest seq
    still retained (``None``: nothing retained), ``events`` contiguous-in-Redis events in seq
    order (trimming may leave gaps only before the first of them)."""

    epoch: str
    state: StreamState
    last: int
    first: int | None
    events: list[LogEvent]
    max_events: int | None


def position(after: str | None) -> tuple[str, int]:
    """The (epoch, seq) a reader asks to read after (``("", 0)``: from the start)."""
    parsed = parse_id(after) if after is not None else None
    return parsed if parsed is not None else ("", 0)


def seq_of(entry_id: str) -> int:
    """The seq of a log entry id ``0-<seq>``."""
    return int(entry_id[2:])


def decode_events(epoch: str, raw: list[Any]) -> list[LogEvent]:
    """Raw XRANGE entries ``[id, [p, epoch, d, data, (e, event)]]`` -> events of ``epoch``."""
    events = []
    for entry_id, fields in raw:
        seq = seq_of(entry_id)
        event = fields[5] if len(fields) > 4 else None
        events.append(LogEvent(format_id(epoch, seq), seq, fields[3], event))
    return events


def _opt_int(value: str | None) -> int | None:
    return int(value) if value else None


def _opt_float(value: str | None) -> float | None:
    return float(value) if value else None


def parse_snapshot(raw: list[Any]) -> Snapshot:
    """The reply of the ``READ`` script (for a stream that exists)."""
    epoch, state, last, oldest, entries, max_events = raw
    return Snapshot(
        epoch,
        StreamState(state),
        int(last),
        seq_of(oldest) if oldest else None,
        decode_events(epoch, entries),
        _opt_int(max_events),
    )


def stream_info(name: str, meta: dict[str, str], length: int) -> StreamInfo:
    """``StreamInfo`` from the meta hash and the log's ``XLEN`` (which counts the end marker
    of a closed stream)."""
    state = StreamState(meta["state"])
    seq = int(meta["seq"])
    return StreamInfo(
        name=name,
        epoch=meta["epoch"],
        state=state,
        created=float(meta["created"]),
        last_id=format_id(meta["epoch"], seq) if seq else None,
        length=max(0, length - (state is not StreamState.OPEN)),
        max_events=_opt_int(meta.get("max")),
        ttl_after_close=_opt_float(meta.get("ttl")),
        meta={k[2:]: v for k, v in meta.items() if k.startswith("m:")},
    )
