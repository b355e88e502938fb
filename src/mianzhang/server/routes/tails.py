"""HTTP routes of the tails feature (``mianzhang.tails``).

==========================  ===================================================================
``GET /v1/tails``            the configured tail names (never their paths)
``GET /v1/tails/{name}``     SSE: the file's last ``?last_lines=`` lines (default
                             ``tails.last_lines``, 0..10000), then lines as they are appended;
                             follows rename-rotation and truncation (``reset`` event); resumes
                             after ``Last-Event-ID`` / ``?last_event_id=`` (a byte offset id)
==========================  ===================================================================

Only names listed in ``tails.files`` are reachable: the name is a dictionary key, no part of
the request becomes a path. An unknown name, or a configured file that does not exist, is a
404 JSON error; a bad ``last_lines`` a 400; both before any stream starts. Auth: an API key
with scope ``tails`` (log files may say more than streams do), added where the router is
included (``create_app``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from ..._errors import InvalidRequest, NotFound
from ..._responses import EventSourceResponse
from ...log.serve import requested_after
from ...tails import FileTail, tail_events
from .._deps import Host, Tails
from .._errors import ErrorRoute

__all__ = ["tails_router"]

_MAX_LAST_LINES = 10_000


def _last_lines(raw: str | None, default: int) -> int:
    """``?last_lines=`` (0..10000), or the configured default."""
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 5 and int(raw) <= _MAX_LAST_LINES):
        problem = {"loc": "last_lines", "msg": "must be a number 0..10000"}
        raise InvalidRequest("last_lines must be a number 0..10000", problems=[problem])
    return int(raw)


tails_router = APIRouter(prefix="/v1/tails", tags=["tails"], route_class=ErrorRoute)


@tails_router.get("", name="tails:list")
async def names(tails: Tails) -> Response:
    """The names of the files that can be tailed."""
    return JSONResponse({"tails": sorted(tails.files)})


@tails_router.get("/{name}", name="tails:follow")
async def follow(request: Request, name: str, tails: Tails, host: Host) -> Response:
    """Follow one allow-listed file as SSE (see the module docstring)."""
    path = tails.files.get(name)
    if path is None:
        raise NotFound(f"no tail named {name!r}")
    last_lines = _last_lines(request.query_params.get("last_lines"), tails.last_lines)
    if not path.is_file():
        raise NotFound(f"tail {name!r}: its file does not exist now")
    tail = FileTail(path, poll_interval=tails.poll_interval, max_line_bytes=tails.max_line_bytes)
    return EventSourceResponse(
        tail_events(tail, name, requested_after(request), last_lines=last_lines),
        headers={"X-Tail": name},
        ping=host.ping,
        send_timeout=host.send_timeout,
        supervisor=host.supervisor,
    )
