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
with scope ``tails`` (log files may say more than streams do).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from ..._responses import EventSourceResponse
from ...log.serve import requested_after
from ...tails import FileTail, tail_events
from .._deps import require
from .._services import Services

__all__ = ["tails_router"]


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)


def tails_router(get_services: Callable[[Request], Services]) -> APIRouter:
    """The tail routes; ``get_services(request)`` returns the app's :class:`Services`."""
    router = APIRouter(prefix="/v1/tails", tags=["tails"], dependencies=[Depends(require("tails"))])

    @router.get("", name="tails:list")
    async def names(request: Request) -> Response:
        """The names of the files that can be tailed."""
        return JSONResponse({"tails": sorted(get_services(request).settings.tails.files)})

    @router.get("/{name}", name="tails:follow")
    async def follow(request: Request, name: str) -> Response:
        """Follow one allow-listed file as SSE (see the module docstring)."""
        found = get_services(request)
        settings = found.settings.tails
        path = settings.files.get(name)
        if path is None:
            return _error(404, "not_found", f"no tail named {name!r}")
        raw = request.query_params.get("last_lines")
        last_lines = settings.last_lines
        if raw is not None:
            if not (raw.isascii() and raw.isdigit() and len(raw) <= 5 and int(raw) <= 10_000):
                return _error(400, "invalid_request", "last_lines must be a number 0..10000")
            last_lines = int(raw)
        if not path.is_file():
            return _error(404, "not_found", f"tail {name!r}: its file does not exist now")
        tail = FileTail(
            path, poll_interval=settings.poll_interval, max_line_bytes=settings.max_line_bytes
        )
        host = found.host
        return EventSourceResponse(
            tail_events(tail, name, requested_after(request), last_lines=last_lines),
            headers={"X-Tail": name},
            ping=host.ping,
            send_timeout=host.send_timeout,
            supervisor=host.supervisor,
        )

    return router
