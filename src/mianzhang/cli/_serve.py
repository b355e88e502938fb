"""``mianzhang serve``: the app built by ``create_app(settings)`` under uvicorn.

Command-line options override the ``MIANZHANG_*`` environment. Invalid settings end the
command with exit status 2 and one line per problem, before any socket is opened. The
listening socket is bound here (so ``socket_send_buffer`` can be set on it) and closed when
the server stops.

The server is ``mianzhang.server._uvicorn``'s (what ``mianzhang.server.run`` runs for any
app): uvicorn with mianzhang's protocol, connections accepted in batches, the collector set
up once the app has started.

``--workers N`` runs N server processes sharing the port (``_workers``: ``SO_REUSEPORT``,
one app and event loop each), which needs the Redis backend: with the memory log each
process would hold its own streams, so it is refused (exit status 2). Limits such as
``max_connections`` apply per process.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Annotated

import typer

from .._errors import ConfigError
from ._common import BindHost, BindPort, LogLevel, settings_or_exit

if TYPE_CHECKING:
    import uvicorn
    from starlette.types import ASGIApp

    from ..server import Settings

__all__ = ["serve"]


def serve(
    host: BindHost = None,
    port: BindPort = None,
    log_backend: Annotated[
        str | None,
        typer.Option(metavar="memory|redis", help="Event log backend [MIANZHANG_LOG_BACKEND]."),
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(metavar="URL", help="Redis for the log and jobs [MIANZHANG_REDIS_URL]."),
    ] = None,
    log_level: LogLevel = "info",
    workers: Annotated[
        int,
        typer.Option(
            metavar="N",
            min=1,
            envvar="MIANZHANG_WORKERS",
            help="Server processes sharing the port; above 1 needs the Redis backend "
            "[MIANZHANG_WORKERS].",
        ),
    ] = 1,
) -> None:
    """Run the server (web UI at http://HOST:PORT/)."""
    overrides: dict[str, object] = {
        name: value
        for name, value in (
            ("host", host),
            ("port", port),
            ("log_backend", log_backend),
            ("redis_url", redis_url),
        )
        if value is not None
    }
    if workers > 1:
        _serve_workers(overrides, log_level, workers)
        return
    settings, application = _build(overrides)
    config = _uvicorn_config(application, settings, log_level)
    typer.echo(f"mianzhang serving on http://{settings.host}:{settings.port}/", err=True)
    from ..server._uvicorn import serve_config

    serve_config(config, settings.socket_send_buffer, settings.accept_batch)


def _serve_workers(overrides: dict[str, object], log_level: str, workers: int) -> None:
    """``workers`` processes on the port (``_workers``); each builds its own app (nothing
    that may start a thread runs before the fork)."""
    from ..server._uvicorn import new_server
    from ._workers import reuse_port_sockets, supervise

    settings = settings_or_exit(overrides)
    if settings.log_backend == "memory":
        typer.echo(
            f"mianzhang: --workers {workers} needs the Redis backend (--log-backend redis "
            "--redis-url URL): with the memory log each worker would hold its own streams "
            "and channels",
            err=True,
        )
        raise typer.Exit(2)
    host, port = settings.host, settings.port
    sockets = reuse_port_sockets(host, port, workers, settings.socket_send_buffer)
    port = sockets[0].getsockname()[1]
    typer.echo(f"mianzhang serving on http://{host}:{port}/ ({workers} workers)", err=True)

    def worker(sock: socket.socket) -> int:
        settings_, application = _build({**overrides, "port": port})
        config = _uvicorn_config(application, settings_, log_level)
        server = new_server(config, settings_.accept_batch)
        server.run(sockets=[sock])
        return 0 if server.started else 3

    status = supervise(sockets, worker)
    if status:
        raise typer.Exit(status)


def _build(overrides: dict[str, object]) -> tuple[Settings, ASGIApp]:
    """Validated settings and the app; bad settings exit with status 2 and their problems."""
    from ..server import create_app

    settings = settings_or_exit(overrides)
    try:
        return settings, create_app(settings)
    except ConfigError as exc:
        typer.echo(f"mianzhang: {exc}", err=True)
        raise typer.Exit(2) from None


def _uvicorn_config(application: ASGIApp, settings: Settings, log_level: str) -> uvicorn.Config:
    """uvicorn's configuration from the settings: header deadlines and size limit, the
    connection limit, graceful shutdown, log format; the access log is the app's own."""
    import uvicorn

    from ..server._http_protocol import guarded_protocol
    from ..server._logging import log_config

    return uvicorn.Config(
        application,
        host=settings.host,
        port=settings.port,
        http=guarded_protocol(settings),
        # uvicorn counts the connection it refuses: N + 1 lets N be served
        limit_concurrency=settings.max_connections + 1,
        timeout_graceful_shutdown=int(settings.graceful_timeout) or None,
        log_config=log_config(settings.log_format, log_level),
        log_level=log_level,
        access_log=False,
        proxy_headers=True,
    )
