"""The SSE read routes served ahead of FastAPI: ``GET /v1/channels/{name}/events`` and
``GET /v1/streams/{id}``.

Why: a subscriber is held open for hours, mostly idle. Through FastAPI every open stream keeps
its whole request chain suspended (FastAPI's and Starlette's middleware, routing, dependency
resolution and its three ``AsyncExitStack``\\ s: about 25 coroutines, 11 KB per idle stream,
``bench/results/fanout-analysis.md`` §5) and every event passes through four ``send``
wrappers. Here the same checks run as plain calls and the response is called directly, under
the app's own middleware that matters for a stream (request id and access log, stream slots):
``create_app``'s app hands these two requests to :class:`LeanStreams` before its stack.

Guarantees: the answers are those of the FastAPI routes, which stay registered (OpenAPI, and
apps that mount the routers themselves): the same auth (a subscriber of the channel; an API
key with ``streams``), the same rate limit, the same JSON 400/401/403/404/429 and 204 before
any stream, every error before the stream answered as the routes' ``ErrorRoute`` answers it
(``server._errors.render``: the request's error shape; anything unexpected a 500, logged with
its traceback). Only an app running on its own services and without OpenTelemetry takes this
path: once ``app.dependency_overrides`` holds anything, or request spans are on, every request
goes through FastAPI, where the overrides and the spans apply.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..llm._serve import serve_stream
from ._deps import admit
from ._errors import render
from ._middleware import RequestContext, StreamSlots
from ._services import Services
from .routes.channels import subscribe

__all__ = ["LeanStreams"]

_CHANNELS, _EVENTS, _STREAMS = "/v1/channels/", "/events", "/v1/streams/"


class LeanStreams:
    """The two read routes as one ASGI app under the app's request-id and stream-slot
    middleware; :meth:`serves` says whether a request is one of them."""

    def __init__(self) -> None:
        self._stack = RequestContext(StreamSlots(_endpoint))

    @staticmethod
    def serves(scope: Scope) -> bool:
        """A ``GET`` of one of the two routes (as FastAPI's routes match them)."""
        return scope["type"] == "http" and scope["method"] == "GET" and _match(scope) is not None

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Coroutine[Any, Any, None]:
        return self._stack(scope, receive, send)


def _match(scope: Scope) -> tuple[bool, str] | None:
    """``(is_channel, name)`` of a read route (``/v1/channels/{name:path}/events``,
    ``/v1/streams/{stream}``), else ``None``."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    if path.startswith(_CHANNELS) and path.endswith(_EVENTS):
        name = path[len(_CHANNELS) : -len(_EVENTS)]
        return (True, name) if name else None
    if path.startswith(_STREAMS):
        stream = path[len(_STREAMS) :]
        return (False, stream) if stream and "/" not in stream else None
    return None


async def _endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    try:
        response = await _answer(scope, receive)  # its frame (the request) is gone after
    except Exception as exc:  # as ErrorRoute: the request's error shape (a bug: a 500)
        response = render(scope, exc)
    await response(scope, receive, send)


async def _answer(scope: Scope, receive: Receive) -> Response:
    """What the route answers: the SSE response, or it raises its refusal."""
    request = Request(scope, receive)
    services: Services = scope["app"].state.services
    route = _match(scope)
    assert route is not None
    is_channel, name = route
    if is_channel:
        principal = services.auth.subscriber(request, name)
        await admit(request, principal, services.limiter)
        return await subscribe(request, name, services.channels, services.host)
    await admit(request, services.auth.require(request, "streams"), services.limiter)
    surface = request.query_params.get("format")
    return await serve_stream(services.host, request, name, surface)
