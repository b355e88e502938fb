"""Errors before a stream starts, answered as JSON in one shape per surface (docs/errors.md).

Routes raise exceptions of the tree (``mianzhang._errors``); they never build an error body.
One renderer per shape (``_shapes.py``: OpenAI's, Anthropic's, mianzhang's own), chosen by the
request's path (``_render.py``), turns the exception into a status, headers and a body. Two
ways lead there, both to :func:`~._render.render`:

* :class:`ErrorRoute`, the route class of every router of ``mianzhang.server.routes``: the
  errors of a route (its dependencies, its body validation, the handler) are answered by the
  route itself, so a router mounted in a user's own app answers in the same shapes;
* :func:`install_error_handlers`, done by ``create_app``: what happens outside a route (an
  unknown route, a wrong method, a middleware's refusal) and anything a route let through.

A failure after the headers is not an HTTP error: each surface ends its stream with its own
error event (``mianzhang.llm``'s surfaces).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ._render import SHAPES, error_for, render, shape_for
from ._status import rate_limit_headers, status_of

__all__ = [
    "SHAPES",
    "ErrorRoute",
    "error_for",
    "error_response",
    "install_error_handlers",
    "rate_limit_headers",
    "render",
    "shape_for",
    "status_of",
]

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


async def error_response(request: Request, exc: Exception) -> Response:
    """The app's exception handler: ``exc`` in the request's error shape."""
    return render(request.scope, exc)


class ErrorRoute(APIRoute):
    """A FastAPI route that answers its own errors (exceptions of the tree, validation errors,
    ``HTTPException``, anything unexpected: a 500) in the request's error shape."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                return render(request.scope, exc)

        return answer


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` (also outside routes) in the request's error shape."""
    app.add_exception_handler(HTTPException, error_response)
    app.add_exception_handler(RequestValidationError, error_response)
    app.add_exception_handler(Exception, error_response)
