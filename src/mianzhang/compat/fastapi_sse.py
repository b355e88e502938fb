"""``fastapi.sse`` (FastAPI's native Server-Sent Events) on mianzhang's response engine.

Change one import and keep the rest of the code::

    # from fastapi.sse import EventSourceResponse, ServerSentEvent
    from mianzhang.compat.fastapi_sse import EventSourceResponse, ServerSentEvent

``@app.get(..., response_class=EventSourceResponse)`` on a path operation that ``yield``\\s
streams the items through mianzhang (FastAPI hands the generator to the response class, as it
does for any streaming ``response_class``), and so does ``return EventSourceResponse(gen())``.
Items become the bytes ``fastapi.sse`` makes of them: a :class:`ServerSentEvent` (FastAPI's own
class, re-exported) with ``data`` as JSON or ``raw_data`` as it is, any other item as the JSON
``data`` of one event; the keep-alive is ``: ping`` after ``_PING_INTERVAL`` (15) idle
seconds. What mianzhang adds: a disconnect cancels the generator at once, a send blocked
``send_timeout`` seconds ends the stream, a failure after the headers ends it with an
``error`` event, a drain (server shutdown) ends it with a ``retry:`` hint.

Departures (docs/migrating-from-sse-starlette.md, "fastapi.sse"): FastAPI validates and
serialises yielded items against the return annotation, and documents their schema in OpenAPI,
only for its own class; here items are serialised as they come (models with
``model_dump_json``, other values with ``jsonable_encoder`` and ``json.dumps``) and OpenAPI
shows a ``text/event-stream`` response without an item schema.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.sse import KEEPALIVE_COMMENT, ServerSentEvent, format_sse_event
from pydantic import BaseModel

from .._responses import EventSourceResponse as _EventSourceResponse
from .._responses._content import Content
from .._sse import ServerSentEvent as _MianzhangEvent

__all__ = ["KEEPALIVE_COMMENT", "EventSourceResponse", "ServerSentEvent", "format_sse_event"]

_PING_INTERVAL: float = 15.0
"""Idle seconds before a keep-alive (read when a response is made; tests may patch it, as
they patch ``fastapi.sse._PING_INTERVAL``)."""


def _finite(value: Any) -> Any:
    """JSON-compatible ``value`` with NaN and infinities as ``None`` (what FastAPI sends)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _json(value: Any) -> str:
    return json.dumps(_finite(jsonable_encoder(value)))


def _event_bytes(item: ServerSentEvent) -> bytes:
    if item.raw_data is not None:
        data: str | None = item.raw_data
    elif item.data is None:
        data = None
    elif isinstance(item.data, BaseModel):
        data = item.data.model_dump_json()
    else:
        data = _json(item.data)
    return format_sse_event(
        data_str=data, event=item.event, id=item.id, retry=item.retry, comment=item.comment
    )


class EventSourceResponse(_EventSourceResponse):
    """``fastapi.sse.EventSourceResponse`` on mianzhang's engine (see the module docstring).

    Takes Starlette's ``StreamingResponse`` arguments (``content``, ``status_code``,
    ``headers``, ``media_type``, ``background``) as FastAPI passes them, and mianzhang's
    options by keyword (``ping``, ``send_timeout``, ``cleanup_timeout``, ``raise_errors``,
    ``supervisor``, ...). Lines end with ``\\n``, as FastAPI's do.
    """

    sse_items = False  # FastAPI's events are pydantic models: encoded by encode_item

    def __init__(
        self,
        content: Content,
        status_code: int = 200,
        headers: Any = None,
        media_type: str = "text/event-stream",
        background: Any = None,
        *,
        ping: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            content,
            status_code,
            headers,
            media_type,
            background,
            _PING_INTERVAL if ping is None else ping,
            "\n",
            **options,
        )

    def encode_item(self, item: Any) -> bytes:
        """An item as ``fastapi.sse`` sends it (``bytes`` and mianzhang events as they are)."""
        if isinstance(item, ServerSentEvent):
            return _event_bytes(item)
        if isinstance(item, _MianzhangEvent):
            return item.encode()
        if isinstance(item, bytes):
            return item
        if isinstance(item, BaseModel):
            return format_sse_event(data_str=item.model_dump_json(by_alias=True))
        return format_sse_event(data_str=_json(item))

    def ping_chunk(self) -> bytes:
        return KEEPALIVE_COMMENT

    def reconnect_chunk(self, retry_ms: int) -> bytes:
        """A drain's farewell: a bare ``retry:`` field (no event is dispatched)."""
        return f"retry: {retry_ms}\n\n".encode()
