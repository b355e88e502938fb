"""Control events the client understands: ``reset`` (surfaced, typed) and ``reconnect``."""

from __future__ import annotations

from typing import Final

import orjson

from .._sse import ServerSentEvent

__all__ = ["RECONNECT_EVENT", "RESET_EVENT", "ResetEvent"]

RESET_EVENT: Final = "reset"
"""``event: reset``: the event log lost history the client asked for (never silent loss)."""

RECONNECT_EVENT: Final = "reconnect"
"""``event: reconnect``: the server is shutting down gracefully; reconnect after ``retry``."""


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


class ResetEvent(ServerSentEvent):
    """An ``event: reset`` whose JSON data was understood: history was lost before resuming.

    It is still a :class:`~mianzhang.ServerSentEvent` (``event == "reset"``, ``data`` the
    original JSON text, ``id`` the last event id), with the payload parsed into attributes:

    * ``reason``: why (``"retention"``, ``"epoch"``, ``"invalid_id"``, ``"unknown_stream"``
      from mianzhang's event log; other servers may send other strings);
    * ``requested``: the id the client asked to resume after (``None`` if none);
    * ``first_available``: the oldest id the server still has (``None`` if nothing);
    * ``epoch``: the stream's current epoch (``None`` if the server did not say).

    Events after it continue from the oldest retained event: the caller should treat its state
    as stale (re-fetch, or show a gap). A ``reset`` event whose data is not a JSON object with
    a string ``reason`` is passed through as a plain ``ServerSentEvent``, never dropped.
    """

    __slots__ = ("epoch", "first_available", "reason", "requested")

    reason: str
    requested: str | None
    first_available: str | None
    epoch: str | None

    @classmethod
    def from_event(cls, event: ServerSentEvent) -> ResetEvent | None:
        """Parse a decoded ``reset`` event; ``None`` if it is not one or its data is unusable."""
        if event.event != RESET_EVENT or not isinstance(event.data, str):
            return None
        try:
            payload = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(payload, dict) or not isinstance(payload.get("reason"), str):
            return None
        reset = cls(event.data, event=RESET_EVENT, id=event.id, retry=event.retry)
        reset.reason = payload["reason"]
        reset.requested = _opt_str(payload.get("requested"))
        reset.first_available = _opt_str(payload.get("first_available"))
        reset.epoch = _opt_str(payload.get("epoch"))
        return reset

    def __repr__(self) -> str:
        return (
            f"ResetEvent(reason={self.reason!r}, requested={self.requested!r}, "
            f"first_available={self.first_available!r}, epoch={self.epoch!r}, id={self.id!r})"
        )
