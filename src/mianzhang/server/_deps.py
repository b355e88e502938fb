"""FastAPI dependencies shared by the routers: the app's services and who is calling."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request

from ._auth import Principal
from ._services import Services

__all__ = ["caller", "require", "services"]


def services(request: Request) -> Services:
    """The app's :class:`Services` (built by its lifespan)."""
    found: Services = request.app.state.services
    return found


def caller(request: Request, principal: Principal) -> str:
    """The name limits are kept under: the key or token subject; the client address for
    anonymous callers."""
    if principal.kind == "anonymous":
        return f"ip:{request.client.host if request.client else 'unknown'}"
    return f"{principal.kind}:{principal.name}"


def require(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: the caller must hold ``scope`` (or be anonymous where allowed); the
    principal is kept on ``request.state.principal`` for rate limits and logs."""

    async def dependency(request: Request) -> Principal:
        found = services(request)
        principal = found.auth.require(request, scope)
        request.state.principal = principal
        await found.limiter.request(caller(request, principal))
        return principal

    return dependency
