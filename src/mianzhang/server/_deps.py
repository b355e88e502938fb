"""FastAPI dependencies shared by the routers: each service of the app, and who is calling.

A route receives the one service it uses through an ``Annotated`` alias defined here (``Host``,
``Jobs``, ``Files``, ``Channels``, ``Tails``, ``Limiter``, ``Settings``, ``LLM``, ``Budget``,
``Chats``...). Each alias resolves through a ``get_x`` function, which by default reads the
app's :class:`~mianzhang.server.Services` (``app.state.services``, built by ``create_app``'s
lifespan). The accessors are coroutines although they do no I/O: FastAPI runs a plain function
dependency in its thread pool, a hop per dependency on every request (measured on the LLM
routes' time to first token). An app that mounts a router by itself provides the service by
overriding ``get_x``::

    app = FastAPI()
    app.include_router(streams_router)
    app.dependency_overrides[get_host] = lambda: my_stream_host

Auth is a dependency too (:func:`require`), added where a router is included, except on
channels, whose routes authenticate per route (publishers and subscribers differ).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends
from prometheus_client import CollectorRegistry
from starlette.requests import Request

from .._errors import Draining, FileNotFound
from .._responses import StreamSupervisor
from ..channels import ChannelHub
from ..chats import ChatStore
from ..files import FilesService
from ..jobs import JobService
from ..llm import LLMService
from ..log import EventLog
from ..log.serve import StreamHost
from ..tails import TailsSettings
from ._auth import ANONYMOUS, Authenticator, Principal
from ._chat_turns import ChatTurns, owner_of
from ._limits import RateLimiter
from ._services import Services
from ._settings import Settings as ServerSettings

__all__ = [
    "LLM",
    "Auth",
    "Budget",
    "Channels",
    "ChatStoreDep",
    "Chats",
    "Files",
    "Host",
    "Jobs",
    "Limiter",
    "LimiterBudget",
    "Log",
    "Metrics",
    "Owner",
    "Settings",
    "Supervisor",
    "Tails",
    "admit",
    "caller",
    "get_auth",
    "get_budget",
    "get_channels",
    "get_chat_store",
    "get_chats",
    "get_files",
    "get_host",
    "get_jobs",
    "get_limiter",
    "get_llm",
    "get_log",
    "get_metrics",
    "get_owner",
    "get_settings",
    "get_supervisor",
    "get_tails",
    "not_draining",
    "require",
    "services",
]

T = TypeVar("T")


def services(request: Request) -> Services:
    """The app's :class:`Services` (built by its lifespan)."""
    found: Services = request.app.state.services
    return found


# -- one accessor per service (override these with app.dependency_overrides) ---------------
def _accessor(name: str, pick: Callable[[Services], T]) -> Callable[[Request], Awaitable[T]]:
    """The dependency ``name``: ``pick`` applied to the app's :class:`Services`. A distinct
    coroutine function per service, so that each one can be overridden on its own."""

    async def get(request: Request) -> T:
        return pick(services(request))

    get.__name__ = get.__qualname__ = name
    get.__doc__ = f"The app's service given by ``{name}`` (override it to provide your own)."
    return get


get_settings = _accessor("get_settings", lambda s: s.settings)
get_log = _accessor("get_log", lambda s: s.log)
get_supervisor = _accessor("get_supervisor", lambda s: s.supervisor)
get_host = _accessor("get_host", lambda s: s.host)
get_metrics = _accessor("get_metrics", lambda s: s.metrics)
get_auth = _accessor("get_auth", lambda s: s.auth)
get_limiter = _accessor("get_limiter", lambda s: s.limiter)
get_llm = _accessor("get_llm", lambda s: s.llm)
get_jobs = _accessor("get_jobs", lambda s: s.jobs)
get_channels = _accessor("get_channels", lambda s: s.channels)
get_chat_store = _accessor("get_chat_store", lambda s: s.chats)
# the tails configuration: the allow-listed files and how they are followed
get_tails = _accessor("get_tails", lambda s: s.settings.tails)


async def get_files(request: Request) -> FilesService:
    """The file service, or :class:`~mianzhang.FileNotFound` (404) when files are disabled."""
    files = services(request).files
    if files is None:
        raise FileNotFound("file storage is disabled on this server")
    return files


class LimiterBudget:
    """The LLM routes' token budget (``routes._generations.TokenBudget``) on the app's rate
    limiter."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    async def check(self, request: Request) -> str:
        principal = getattr(request.state, "principal", ANONYMOUS)
        who = caller(request, principal)
        await self.limiter.check_tokens(who)
        return who

    async def charge(self, who: str, tokens: int) -> None:
        await self.limiter.charge_tokens(who, tokens)


Settings = Annotated[ServerSettings, Depends(get_settings)]
Log = Annotated[EventLog, Depends(get_log)]
Supervisor = Annotated[StreamSupervisor, Depends(get_supervisor)]
Host = Annotated[StreamHost, Depends(get_host)]
Metrics = Annotated[CollectorRegistry, Depends(get_metrics)]
Auth = Annotated[Authenticator, Depends(get_auth)]
Limiter = Annotated[RateLimiter, Depends(get_limiter)]
LLM = Annotated[LLMService, Depends(get_llm)]
Jobs = Annotated[JobService, Depends(get_jobs)]
Channels = Annotated[ChannelHub, Depends(get_channels)]
Tails = Annotated[TailsSettings, Depends(get_tails)]
Files = Annotated[FilesService, Depends(get_files)]


async def get_budget(limiter: Limiter) -> LimiterBudget:
    """The token budget on the app's rate limiter (follows an override of ``get_limiter``)."""
    return LimiterBudget(limiter)


Budget = Annotated[LimiterBudget, Depends(get_budget)]


ChatStoreDep = Annotated[ChatStore, Depends(get_chat_store)]


async def get_chats(store: ChatStoreDep, llm: LLM, host: Host, settings: Settings) -> ChatTurns:
    """Chats and their generations (follows overrides of the store, gateway, host, settings)."""
    return ChatTurns(store, llm, host, settings.chats)


Chats = Annotated[ChatTurns, Depends(get_chats)]


async def get_owner(request: Request) -> str:
    """Who owns the chats this request creates or may touch (the principal the route's auth
    dependency recorded; anonymous when auth is off)."""
    return owner_of(getattr(request.state, "principal", ANONYMOUS))


Owner = Annotated[str, Depends(get_owner)]


# -- who is calling --------------------------------------------------------------------------
def caller(request: Request, principal: Principal) -> str:
    """The name limits are kept under: the key or token subject; the client address for
    anonymous callers."""
    if principal.kind == "anonymous":
        return f"ip:{request.client.host if request.client else 'unknown'}"
    return f"{principal.kind}:{principal.name}"


async def not_draining(request: Request, supervisor: Supervisor) -> None:
    """New work (``POST``) is refused with 503 + ``Retry-After`` once the instance drains, so
    the client or the load balancer takes it to another instance."""
    if request.method == "POST" and supervisor.draining:
        raise Draining("this instance is shutting down: retry on another one")


async def admit(request: Request, principal: Principal, limiter: RateLimiter) -> Principal:
    """Record the caller on ``request.state.principal`` (stream slots, logs) and count the
    request against its limit."""
    request.state.principal = principal
    await limiter.request(caller(request, principal))
    return principal


def require(scope: str, *, new_work: bool = False) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller must hold ``scope`` (or be anonymous where allowed); the
    principal is kept on ``request.state.principal`` for rate limits and logs. With
    ``new_work``, ``POST`` requests are refused while the instance drains (as
    :func:`not_draining`), in the same dependency (one resolution per request)."""

    async def allowed(request: Request, auth: Auth, limiter: Limiter) -> Principal:
        return await admit(request, auth.require(request, scope), limiter)

    async def allowed_new_work(
        request: Request, auth: Auth, limiter: Limiter, supervisor: Supervisor
    ) -> Principal:
        await not_draining(request, supervisor)
        return await admit(request, auth.require(request, scope), limiter)

    return allowed_new_work if new_work else allowed
