"""``sse_starlette.event`` of sse-starlette 3.7.1, on mianzhang's encoder.

The same names, arguments and defaults: :class:`ServerSentEvent` (``\\r\\n`` lines unless
``sep`` says otherwise), :class:`JSONServerSentEvent`, :func:`ensure_bytes`. Both event classes
are also :class:`mianzhang.ServerSentEvent`, so mianzhang's responses send them as they are.

Guarantees (the departures from 3.7.1 are listed in docs/migrating-from-sse-starlette.md):

* The same fields give the same bytes as sse-starlette 3.7.1, for ``str``, numbers and
  pre-encoded ``bytes``.
* A field that would change meaning on the wire raises :class:`mianzhang.SSEEncodeError` (a
  ``ValueError``) where sse-starlette strips it silently: CR/LF in ``event`` or ``id``, NUL in
  ``id``, a ``retry`` that is not a non-negative ``int``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..._sse import JSONServerSentEvent as _JSONEvent
from ..._sse import ServerSentEvent as _Event

__all__ = ["JSONServerSentEvent", "ServerSentEvent", "ensure_bytes"]


class ServerSentEvent(_Event):
    """sse-starlette's ``ServerSentEvent``: ``data`` positional, the other fields by keyword,
    lines separated by ``DEFAULT_SEPARATOR`` (``\\r\\n``) unless ``sep`` is given.

    ``dict``/``list`` data is sent as JSON, where sse-starlette sends Python's ``repr``.
    """

    __slots__ = ()

    DEFAULT_SEPARATOR: ClassVar[str] = "\r\n"

    def __init__(
        self,
        data: Any | None = None,
        *,
        event: str | None = None,
        id: str | int | None = None,
        retry: int | None = None,
        comment: str | None = None,
        sep: str | None = None,
    ) -> None:
        super().__init__(
            data,
            event=event,
            id=id,
            retry=retry,
            comment=comment,
            sep=self.DEFAULT_SEPARATOR if sep is None else sep,
        )


class JSONServerSentEvent(ServerSentEvent, _JSONEvent):
    """An event whose ``data`` is sent as compact JSON (non-ASCII kept as is).

    Serialised when encoded (orjson), not when made: ``data`` keeps the value given, and
    ``NaN``/``Infinity`` become ``null`` where sse-starlette raises ``ValueError``.
    """

    __slots__ = ()


def ensure_bytes(data: bytes | dict[str, Any] | _Event | Any, sep: str) -> bytes:
    """One item of a response's content as bytes, as sse-starlette 3.7.1 turns it:
    ``bytes``/``memoryview`` as they are, an event encoded, a ``dict`` as the keyword
    arguments of a :class:`ServerSentEvent` (with ``sep``), anything else as the ``str`` of
    one event's data."""
    if isinstance(data, bytes | memoryview):
        return bytes(data)
    if isinstance(data, _Event):
        return data.encode()
    if isinstance(data, dict):
        return ServerSentEvent(**{**data, "sep": sep}).encode()
    return ServerSentEvent(str(data), sep=sep).encode()
