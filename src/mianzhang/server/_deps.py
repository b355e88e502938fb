"""FastAPI dependencies shared by the routers: the app's services and who is calling."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request

from ._auth import Principal
from ._services import Services

__all__ = ["require", "services"]


def services(request: Request) -> Services:
    """The app's :class:`Services` (built by its lifespan)."""
    found: Services = request.app.state.services
    return found


def require(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: the caller must hold ``scope`` (or be anonymous where allowed); the
    principal is kept on ``request.state.principal`` for rate limits and logs."""

    async def dependency(request: Request) -> Principal:
        principal = services(request).auth.require(request, scope)
        request.state.principal = principal
        return principal

    return dependency
