"""``mianzhang serve``: the app built by ``create_app(settings)`` under uvicorn.

Command-line options override the ``MIANZHANG_*`` environment. Invalid settings end the
command with exit status 2 and one line per problem, before any socket is opened. The
listening socket is bound here (so ``socket_send_buffer`` can be set on it) and closed when
the server stops.

Connections are accepted by ``server._acceptor`` in batches of up to ``accept_batch`` (128)
per event-loop iteration (uvloop accepts one per iteration: 1,000 clients connecting at once
to busy streams had their first event after 0.31-0.99 s at p99, median 0.65 s; with the
batches 0.18-0.40 s, median 0.27 s;
``MZ_BENCH_SERVER=mianzhang python bench/sse_peers.py --scenarios s2``).

``--workers N`` runs N server processes sharing the port (``_workers``: ``SO_REUSEPORT``,
one app and event loop each), which needs the Redis backend: with the memory log each
process would hold its own streams, so it is refused (exit status 2). Limits such as
``max_connections`` apply per process.

Garbage collection: once the app has started, the objects made so far (modules, the app, its
services) are frozen out of the collector's way (``gc.freeze``) and the young generation's
threshold is raised to ``GC_THRESHOLD`` allocations (Python's default is 700). An open stream
holds about 80 collector-tracked objects; with the default threshold, opening 10,000 streams
ran 7 full collections of a heap growing to 900,000 objects (each a pause of 0.1-0.7 s for
every stream of the process), with 10,000 none, and opening them took 1.2-1.4 s instead of
3.6-4.7 s (``bench/results/fanout-opt.md``). Cyclic garbage waits a little longer for its
collection.
"""

from __future__ import annotations

import functools
import gc
import socket
from typing import TYPE_CHECKING, Annotated

import typer

from .._errors import ConfigError

if TYPE_CHECKING:
    import uvicorn
    from starlette.types import ASGIApp

    from ..server import Settings

__all__ = ["GC_THRESHOLD", "serve"]

GC_THRESHOLD = 10_000
"""Allocations between two young collections in ``mianzhang serve`` (see the docstring)."""


def serve(
    host: Annotated[
        str | None, typer.Option(metavar="HOST", help="Interface to bind [MIANZHANG_HOST].")
    ] = None,
    port: Annotated[
        int | None, typer.Option(metavar="PORT", help="TCP port [MIANZHANG_PORT].")
    ] = None,
    log_backend: Annotated[
        str | None,
        typer.Option(metavar="memory|redis", help="Event log backend [MIANZHANG_LOG_BACKEND]."),
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(metavar="URL", help="Redis for the log and jobs [MIANZHANG_REDIS_URL]."),
    ] = None,
    log_level: Annotated[
        str, typer.Option(metavar="LEVEL", help="debug, info, warning or error.")
    ] = "info",
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
    _run(config, settings.socket_send_buffer, settings.accept_batch)


def _settings(overrides: dict[str, object]) -> Settings:
    """Validated settings; bad settings exit with status 2 and their problems."""
    from ..server import load_settings

    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        typer.echo(f"mianzhang: {exc}", err=True)
        raise typer.Exit(2) from None


def _serve_workers(overrides: dict[str, object], log_level: str, workers: int) -> None:
    """``workers`` processes on the port (``_workers``); each builds its own app (nothing
    that may start a thread runs before the fork)."""
    from ._workers import reuse_port_sockets, supervise

    settings = _settings(overrides)
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
        server = _new_server(config, settings_.accept_batch)
        server.run(sockets=[sock])
        return 0 if server.started else 3

    status = supervise(sockets, worker)
    if status:
        raise typer.Exit(status)


def _build(overrides: dict[str, object]) -> tuple[Settings, ASGIApp]:
    """Validated settings and the app; bad settings exit with status 2 and their problems."""
    from ..server import create_app, load_settings

    try:
        settings = load_settings(**overrides)
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


def _run(config: uvicorn.Config, send_buffer: int, accept_batch: int) -> None:
    """Bind the socket (with ``SO_SNDBUF`` unless 0), serve until stopped, close it."""
    sock = config.bind_socket()
    if send_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    try:
        _new_server(config, accept_batch).run(sockets=[sock])
    finally:
        sock.close()


def _server_class() -> type[uvicorn.Server]:
    import uvicorn

    from ..server._acceptor import ACCEPT_BATCH, Acceptor

    class Server(uvicorn.Server):
        """uvicorn's server accepting connections in batches (``server._acceptor``: uvloop
        accepts one per loop iteration), with the collector set up once the app started."""

        acceptors: list[Acceptor]
        accept_batch = ACCEPT_BATCH  # 0: the event loop accepts (one per iteration on uvloop)

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            self.acceptors = []
            ours = bool(sockets) and self.accept_batch > 0
            # the sockets are ours to accept from: uvicorn runs the lifespan, listens to none
            await super().startup(sockets=[] if ours else sockets)
            if sockets and ours:
                factory = functools.partial(
                    self.config.http_protocol_class,  # type: ignore[call-arg]
                    config=self.config,
                    server_state=self.server_state,
                    app_state=self.lifespan.state,
                )
                backlog = self.config.backlog
                batch = self.accept_batch
                self.acceptors = [Acceptor(sock, factory, backlog, batch) for sock in sockets]
                self.servers = list(self.acceptors)  # type: ignore[arg-type]  # (close())
                for acceptor in self.acceptors:
                    acceptor.start()
            gc.collect()
            gc.freeze()  # what exists now lives as long as the server: out of the way
            gc.set_threshold(GC_THRESHOLD, 10, 10)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            for acceptor in self.acceptors:  # no connection made after this goes unseen
                acceptor.close()
            for acceptor in self.acceptors:
                await acceptor.wait_closed()
            await super().shutdown(sockets=sockets)

    return Server


def _new_server(config: uvicorn.Config, accept_batch: int | None = None) -> uvicorn.Server:
    """uvicorn's server as ``mianzhang serve`` runs it (``accept_batch``: connections accepted
    per loop iteration, ``None``: the default, 0: the loop's own accept)."""
    server = _server_class()(config)
    if accept_batch is not None:
        server.accept_batch = accept_batch  # type: ignore[attr-defined]
    return server
