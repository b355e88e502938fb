"""FastAPI dependencies shared by the routers: the app's services and who is calling."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request

from .._errors import Draining
from ._auth import ANONYMOUS, Principal
from ._limits import RateLimiter
from ._services import Services

__all__ = ["LimiterBudget", "caller", "not_draining", "require", "services", "token_budget"]


def services(request: Request) -> Services:
    """The app's :class:`Services` (built by its lifespan)."""
    found: Services = request.app.state.services
    return found


class LimiterBudget:
    """The LLM routes' token budget (``routes.llm.TokenBudget``) on the app's rate limiter."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    async def check(self, request: Request) -> str:
        principal = getattr(request.state, "principal", ANONYMOUS)
        who = caller(request, principal)
        await self.limiter.check_tokens(who)
        return who

    async def charge(self, who: str, tokens: int) -> None:
        await self.limiter.charge_tokens(who, tokens)


def token_budget(request: Request) -> LimiterBudget:
    return LimiterBudget(services(request).limiter)


def caller(request: Request, principal: Principal) -> str:
    """The name limits are kept under: the key or token subject; the client address for
    anonymous callers."""
    if principal.kind == "anonymous":
        return f"ip:{request.client.host if request.client else 'unknown'}"
    return f"{principal.kind}:{principal.name}"


async def not_draining(request: Request) -> None:
    """New work (``POST``) is refused with 503 + ``Retry-After`` once the instance drains, so
    the client or the load balancer takes it to another instance."""
    if request.method == "POST" and services(request).supervisor.draining:
        raise Draining("this instance is shutting down: retry on another one")


def require(scope: str, *, new_work: bool = False) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: the caller must hold ``scope`` (or be anonymous where allowed); the
    principal is kept on ``request.state.principal`` for rate limits and logs. With
    ``new_work``, ``POST`` requests are refused while the instance drains (as
    :func:`not_draining`), in the same dependency (one resolution per request)."""

    async def dependency(request: Request) -> Principal:
        if new_work:
            await not_draining(request)
        found = services(request)
        principal = found.auth.require(request, scope)
        request.state.principal = principal
        await found.limiter.request(caller(request, principal))
        return principal

    return dependency
