"""HTTP routes of the channels feature (``mianzhang.channels``).

=====================================  ===========================================================
``POST /v1/channels/{name}/publish``    publish one event: 201 ``{"channel", "id",
                                        "duplicate": false}``; 200 with the first publish's
                                        id and ``"duplicate": true`` for a repeated
                                        idempotency key (nothing stored)
``GET /v1/channels/{name}/events``      subscribe (SSE): history, then live events; resumes
                                        after ``Last-Event-ID`` / ``?last_event_id=``
``GET /v1/channels/{name}``             the channel's info with its subscriber count (JSON)
=====================================  ===========================================================

Publish body: ``application/json`` is an envelope ``{"data": <any JSON>, "event": "type",
"idempotency_key": "key"}`` (only ``data`` required; a JSON string is sent as its text,
anything else as JSON); ``text/plain`` is the data itself, as text. ``event`` and
``idempotency_key`` may also come as query parameters, the key also as an ``Idempotency-Key``
header; two sources that disagree are a 400. Bodies over ``channels.max_publish_bytes`` are a
413, other content types a 415.

Subscribe: ``?history=`` is ``true`` (default: every retained event first), ``false`` (start
at the live tail) or a count N (the last N events first); a ``Last-Event-ID`` overrides it.
Lost history is announced by a ``reset`` event, never silent.

Auth: publishing needs an API key with scope ``channels:publish``; subscribing a JWT whose
``mianzhang.subscribe`` claim matches the channel (``Authorization: Bearer`` or the
``mianzhang_token`` cookie), or an API key with ``channels:subscribe``; info either of the
two. Every refusal (401/403) and every bad request (400) is JSON, before any stream starts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.responses import Response

from ..._errors import (
    AuthError,
    Forbidden,
    InvalidRequest,
    MianzhangError,
    RequestTooLarge,
    UnsupportedMediaType,
)
from ...channels import ChannelHub, channel_stream, check_channel_name
from ...log.serve import StreamHost, requested_after
from .._auth import Principal
from .._deps import Auth, Channels, Host, Limiter, Settings, admit, require
from .._errors import ErrorRoute

__all__ = ["PublishEnvelope", "channels_router", "subscribe"]

_TRUE = frozenset({"true", "yes", "on"})
_FALSE = frozenset({"false", "no", "off"})
_ALL = 1 << 62  # "every retained event": start_after clamps it to the oldest one


class PublishEnvelope(BaseModel):
    """The JSON body of a publish."""

    model_config = ConfigDict(extra="forbid")

    data: Any
    event: str | None = None
    idempotency_key: str | None = None


@contextlib.contextmanager
def _invalid_values() -> Iterator[None]:
    """A ``ValueError`` of the channel layer (a bad channel name or event name) as a 400."""
    try:
        yield
    except MianzhangError:
        raise
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None


def _history(value: str | None) -> int:
    """``?history=`` as a count of past events to send first."""
    if value is None or value.lower() in _TRUE:
        return _ALL
    if value.lower() in _FALSE:
        return 0
    if value.isascii() and value.isdigit() and len(value) <= 9:
        return int(value)
    raise InvalidRequest("history must be true, false or a number of events")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestTooLarge(limit)
    return bytes(body)


def _one(name: str, *values: str | None) -> str | None:
    given = {v for v in values if v is not None}
    if len(given) > 1:
        raise InvalidRequest(f"{name} is given twice with different values")
    return given.pop() if given else None


async def _parse_publish(request: Request, limit: int) -> tuple[Any, str | None, str | None]:
    """``(data, event, idempotency_key)`` of a publish request (see the module docstring)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await _read_body(request, limit)
    envelope = PublishEnvelope(data=None)
    if media == "application/json" or media.endswith("+json"):
        try:
            envelope = PublishEnvelope.model_validate(orjson.loads(body))
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"the body is not JSON: {exc}") from None
        except ValidationError as exc:
            problems = [
                {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]}
                for e in exc.errors(include_url=False)
            ]
            listed = "; ".join(f"{p['loc'] or 'body'}: {p['msg']}" for p in problems)
            expected = 'expected {"data": ..., "event"?, "idempotency_key"?}'
            raise InvalidRequest(f"{expected}: {listed}", problems=problems) from None
        data: Any = envelope.data
    elif media == "text/plain":
        try:
            data = body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest("a text/plain body must be UTF-8") from None
    else:
        raise UnsupportedMediaType("send application/json (an envelope) or text/plain (the data)")
    query = request.query_params
    event = _one("event", envelope.event, query.get("event"))
    key = _one(
        "idempotency_key",
        envelope.idempotency_key,
        query.get("idempotency_key"),
        request.headers.get("idempotency-key"),
    )
    return data, event, key


async def _subscriber(request: Request, name: str, auth: Auth, limiter: Limiter) -> Principal:
    """The caller may read channel ``name`` (else 401/403 before any stream)."""
    return await admit(request, auth.subscriber(request, name), limiter)


async def _reader_or_publisher(
    request: Request, name: str, auth: Auth, limiter: Limiter
) -> Principal:
    """A subscriber of ``name``, or a publisher (API key with ``channels:publish``)."""
    try:
        principal = auth.subscriber(request, name)
    except Forbidden as refused:
        try:
            principal = auth.require(request, "channels:publish")
        except AuthError:
            raise refused from None
    return await admit(request, principal, limiter)


channels_router = APIRouter(prefix="/v1/channels", tags=["channels"], route_class=ErrorRoute)


@channels_router.post(
    "/{name:path}/publish",
    name="channels:publish",
    status_code=201,
    dependencies=[Depends(require("channels:publish"))],
)
async def publish(request: Request, name: str, hub: Channels, settings: Settings) -> Response:
    """Publish one event (see the module docstring for the body)."""
    with _invalid_values():
        check_channel_name(name)
        limit = settings.channels.max_publish_bytes
        data, event, key = await _parse_publish(request, limit)
        published = await hub.publish(name, data, event=event, idempotency_key=key)
    body = {"channel": name, "id": published.id, "duplicate": published.duplicate}
    return JSONResponse(body, status_code=200 if published.duplicate else 201)


@channels_router.get(
    "/{name:path}/events", name="channels:events", dependencies=[Depends(_subscriber)]
)
async def events(request: Request, name: str, hub: Channels, host: Host) -> Response:
    """Subscribe as SSE: history (``?history=``), then live events; resumable."""
    return await subscribe(request, name, hub, host)


async def subscribe(request: Request, name: str, hub: ChannelHub, host: StreamHost) -> Response:
    """The subscribe route's answer once the caller is admitted: ``InvalidRequest`` (a 400)
    for a bad name or ``history``, else the SSE response (also served without FastAPI:
    ``server._lean``)."""
    after = requested_after(request)
    with _invalid_values():
        check_channel_name(name)
        history = _history(request.query_params.get("history"))
        if after is None:
            after = await hub.start_after(name, history)
        else:
            await hub.prepare(name)
    return host.sse(request, channel_stream(name), after, {"X-Channel": name})


@channels_router.get(
    "/{name:path}", name="channels:info", dependencies=[Depends(_reader_or_publisher)]
)
async def info(name: str, hub: Channels) -> Response:
    """The channel's retained history and current subscribers (on every instance)."""
    with _invalid_values():
        check_channel_name(name)
    found = await hub.info(name)
    return JSONResponse(
        {
            "channel": name,
            "subscribers": await hub.subscribers(name),
            "epoch": found.epoch if found else None,
            "last_id": found.last_id if found else None,
            "length": found.length if found else 0,
            "max_events": found.max_events if found else hub.max_events_for(name),
            "created": found.created if found else None,
        }
    )
