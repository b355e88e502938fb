"""``create_app(settings)``: the mianzhang server as one FastAPI application.

The app owns its :class:`~mianzhang.server.Services` through its lifespan: they are built at
startup and closed at shutdown (producers cancelled and awaited, live streams drained with a
``reconnect`` event, the log closed last). SIGTERM/SIGINT first drain the streams, then reach
uvicorn's own handler, so uvicorn's graceful shutdown is not held up by endless streams.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from .. import __version__
from .._responses import SUPERVISOR_STATE_KEY
from ._deps import require
from ._errors import install_error_handlers
from ._lean import LeanStreams
from ._middleware import BodyDeadline, RequestContext, StreamSlots
from ._otel import otlp_tracer_provider, telemetry_config
from ._services import open_services
from ._settings import Settings, load_settings
from .routes.agui import agui_router
from .routes.ai_sdk import ai_sdk_router
from .routes.anthropic import anthropic_router
from .routes.channels import channels_router
from .routes.chats import chats_router
from .routes.demo import demo_router
from .routes.files import file_jobs_router, files_read_router, files_write_router
from .routes.jobs import jobs_router
from .routes.llm import llm_router
from .routes.ops import ops_router
from .routes.streams import streams_router
from .routes.tails import tails_router

__all__ = ["create_app"]

logger = logging.getLogger("mianzhang.server")

WEB_DIR = Path(__file__).resolve().parent.parent / "web"

Lifespan = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[dict[str, object]]]


def _lifespan(settings: Settings, owned_provider: Any) -> Lifespan:
    """Build the services at startup; at shutdown drain the streams, then close them (and the
    tracer provider the app made, if any)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, object]]:
        async with open_services(settings) as built:
            app.state.services = built
            if settings.auth.allows_anonymous:
                logger.warning(
                    "auth: anonymous access is allowed (no API keys or JWT keys configured);"
                    " fine for local use, configure MIANZHANG_AUTH__* before exposing it"
                )
            with built.supervisor.signal_hook():
                try:
                    yield {SUPERVISOR_STATE_KEY: built.supervisor}
                finally:
                    built.supervisor.drain()
                    if owned_provider is not None:
                        owned_provider.shutdown()

    return lifespan


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    # outermost first: request id around everything, then the body deadline, stream slots
    app.add_middleware(StreamSlots)
    app.add_middleware(BodyDeadline, timeout=settings.body_timeout)
    app.add_middleware(RequestContext)
    # errors outside a route (unknown routes, wrong methods, middleware refusals) in the
    # request's error shape; routes answer their own (server/_errors)
    install_error_handlers(app)


def _include_routers(app: FastAPI) -> None:
    """Every feature's routes, each group behind the scope it needs."""

    def guarded(scope: str, *, new_work: bool = False) -> list[Any]:
        return [Depends(require(scope, new_work=new_work))]

    app.include_router(ops_router)
    app.include_router(streams_router, dependencies=guarded("streams"))
    app.include_router(demo_router)
    app.include_router(llm_router, dependencies=guarded("llm", new_work=True))
    app.include_router(anthropic_router, dependencies=guarded("llm", new_work=True))
    app.include_router(ai_sdk_router, dependencies=guarded("llm", new_work=True))
    app.include_router(agui_router, dependencies=guarded("llm", new_work=True))
    app.include_router(chats_router, dependencies=guarded("llm", new_work=True))
    app.include_router(files_read_router, dependencies=guarded("files:read"))
    app.include_router(files_write_router, dependencies=guarded("files:write"))
    app.include_router(file_jobs_router, dependencies=guarded("files:write"))
    # channels authenticate per route (publishers and subscribers differ)
    app.include_router(channels_router)
    app.include_router(tails_router, dependencies=guarded("tails"))
    app.include_router(jobs_router, dependencies=guarded("jobs"))


def _mount_web(app: FastAPI) -> None:
    app.mount("/web", StaticFiles(directory=WEB_DIR), name="web")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})


class _App(FastAPI):
    """FastAPI, with the SSE read routes answered before its stack (``_lean``) while the app
    runs on its own services and without request spans."""

    lean: LeanStreams | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lean = self.lean
        if lean is not None and not self.dependency_overrides and lean.serves(scope):
            scope["app"] = self
            await lean(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, *, tracer_provider: Any = None) -> FastAPI:
    """The server app. Without ``settings`` they are read (and validated) from ``MIANZHANG_*``;
    invalid settings raise :class:`~mianzhang.ConfigError` here, before anything runs.

    ``tracer_provider``: an OpenTelemetry ``TracerProvider`` for request spans (the app does
    not shut it down); with ``settings.otel_tracing`` and none given, an OTLP one is made and
    shut down with the app."""
    settings = settings or load_settings()
    owned_provider = None
    if tracer_provider is None and settings.otel_tracing:
        tracer_provider = owned_provider = otlp_tracer_provider()
    app = _App(
        title="mianzhang",
        version=__version__,
        lifespan=_lifespan(settings, owned_provider),
        docs_url="/docs",
        redoc_url=None,
        telemetry=telemetry_config(tracer_provider),  # type: ignore[arg-type]
    )
    app.state.settings = settings
    if tracer_provider is None:
        app.lean = LeanStreams()
    _add_middleware(app, settings)
    _include_routers(app)
    if settings.web:
        _mount_web(app)
    return app
