"""Which error shape a request gets, and the answer to an exception in it.

The shape is chosen by the request's path, here and nowhere else (:data:`SHAPES`, first
matching prefix wins, whole path segments only): Anthropic's under ``/v1/messages``,
mianzhang's own under the feature routes (streams, channels, jobs, files, uploads, tails,
demo), OpenAI's anywhere else under ``/v1/`` (chat, responses, models, the native
generations, and every unknown ``/v1/`` route), mianzhang's outside ``/v1/``.

Framework errors are translated into the exception tree first, so they get the same shapes:
an unknown route is a :class:`~mianzhang.NotFound`, a wrong method a
:class:`~mianzhang.MethodNotAllowed` (with ``Allow``), FastAPI's validation error (a 422) an
:class:`~mianzhang.InvalidRequest` (400) listing the problems, any other ``HTTPException`` a
:class:`~mianzhang.RequestError` with its status.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import Scope

from ... import _errors as e
from ._shapes import RENDERERS
from ._status import headers_for

__all__ = ["SHAPES", "error_for", "render", "shape_for"]

logger = logging.getLogger("mianzhang.server")

SHAPES: Final[tuple[tuple[str, str], ...]] = (
    ("/v1/messages", "anthropic"),
    ("/v1/streams", "mianzhang"),
    ("/v1/chats", "mianzhang"),
    ("/v1/channels", "mianzhang"),
    ("/v1/jobs", "mianzhang"),
    ("/v1/files", "mianzhang"),
    ("/v1/uploads", "mianzhang"),
    ("/v1/tails", "mianzhang"),
    ("/v1/demo", "mianzhang"),
    ("/v1", "openai"),
)
"""Path prefix -> error shape (``mianzhang`` outside them all)."""


def _route_path(scope: Scope) -> str:
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def shape_for(path: str) -> str:
    """The error shape of a request to ``path`` (see :data:`SHAPES`)."""
    for prefix, shape in SHAPES:
        if path == prefix or path.startswith(prefix + "/"):
            return shape
    return "mianzhang"


def _problems(errors: Sequence[Any]) -> list[dict[str, str]]:
    problems = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path"):
            loc = loc[1:]
        problems.append({"loc": ".".join(loc), "msg": str(error.get("msg", "invalid"))})
    return problems


def error_for(scope: Scope, exc: BaseException) -> BaseException:
    """``exc`` as an exception of the tree (framework errors translated; see the docstring)."""
    if isinstance(exc, RequestValidationError):
        problems = _problems(exc.errors())
        first = problems[0] if problems else {"loc": "", "msg": "invalid request"}
        message = f"{first['loc']}: {first['msg']}" if first["loc"] else first["msg"]
        return e.InvalidRequest(message, problems=problems)
    if not isinstance(exc, HTTPException):
        return exc
    where = f"{scope.get('method', 'GET')} {_route_path(scope)}"
    if exc.status_code == 404 and exc.detail == "Not Found":
        return e.NotFound(f"no route {where}")
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        names = [m.strip() for m in allowed.split(",") if m.strip()]
        return e.MethodNotAllowed(f"{where}: method not allowed (allowed: {allowed})", names)
    translated = e.RequestError(str(exc.detail))
    translated.status_code = exc.status_code
    return translated


def render(scope: Scope, exc: BaseException) -> JSONResponse:
    """The answer to ``exc`` in the error shape of the request ``scope``. An unexpected
    exception is logged with its traceback (its body says nothing of it), a 5xx of the tree
    as a warning."""
    error = error_for(scope, exc)
    status, body = RENDERERS[shape_for(_route_path(scope))](error)
    headers: Mapping[str, str] = headers_for(error, status)
    if isinstance(exc, HTTPException) and exc.headers:
        headers = {**exc.headers, **headers}
    where = f"{scope.get('method')} {scope.get('path')}"
    if not isinstance(error, e.MianzhangError):
        logger.error("unhandled error on %s", where, exc_info=exc)
    elif status >= 500:
        logger.warning("request refused: %s: %s %s", where, status, error)
    return JSONResponse(body, status_code=status, headers=dict(headers))
