"""uvicorn's server as mianzhang runs it, for its own app (``mianzhang serve``) and for yours
(:func:`run`, ``mianzhang run module:app``).

What it adds to ``uvicorn.run``:

* **The protocol.** uvicorn's httptools protocol with the request-head limits uvicorn lacks
  and the ``mianzhang.transport`` extension (``_http_protocol``): a stream cut for not reading
  is reset at once, a stalled reader is seen by the acknowledgement watchdog, a stream's
  unsent bytes are bounded.
* **Accepting in batches** (``_acceptor``, ``accept_batch``, 128): uvloop accepts one
  connection per loop iteration; 1,000 clients connecting at once to busy streams had their
  first event after 0.31-0.99 s at p99 (median 0.65 s) under plain uvicorn, 0.18-0.40 s
  (median 0.27 s) here (``MZ_BENCH_SERVER=mianzhang python bench/sse_peers.py --scenarios s2``).
* **The collector.** Once the app has started, the objects made so far (modules, the app, its
  services) are frozen out of the collector's way (``gc.freeze``) and the young generation's
  threshold is raised to :data:`GC_THRESHOLD` allocations (Python's default is 700). An open
  stream holds about 80 collector-tracked objects; with the default threshold, opening 10,000
  streams ran 7 full collections of a heap growing to 900,000 objects (each a pause of
  0.1-0.7 s for every stream of the process), with 10,000 none, and opening them took 1.2-1.4 s
  instead of 3.6-4.7 s (``bench/results/fanout-opt.md``). Cyclic garbage waits a little
  longer for its collection.
* **The connection cap** (``max_connections``) answered with a JSON 503, and graceful shutdown
  within ``graceful_timeout``, from the same settings as ``mianzhang serve``.

Guarantees: the listening socket is bound before the server starts (``socket_send_buffer``
set on it when non-zero) and closed when it stops, however it stops; connections accepted by
the batches are the server's like any other (limits, graceful shutdown), and none is accepted
after its shutdown began without being known to it.
"""

from __future__ import annotations

import functools
import gc
import socket
from typing import TYPE_CHECKING, Any

import uvicorn

from ._acceptor import ACCEPT_BATCH, Acceptor
from ._http_protocol import guarded_protocol

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from ._settings import Settings

__all__ = ["GC_THRESHOLD", "new_server", "run", "serve_config"]

GC_THRESHOLD = 10_000
"""Allocations between two young collections once the server has started (see the module
docstring)."""


class _Server(uvicorn.Server):
    """uvicorn's server accepting connections in batches, with the collector set up once the
    app started."""

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


def new_server(config: uvicorn.Config, accept_batch: int | None = None) -> uvicorn.Server:
    """uvicorn's server as mianzhang runs it (``accept_batch``: connections accepted per loop
    iteration; ``None``: the default, 0: the loop's own accept)."""
    server = _Server(config)
    if accept_batch is not None:
        server.accept_batch = accept_batch
    return server


def serve_config(config: uvicorn.Config, send_buffer: int, accept_batch: int) -> None:
    """Bind ``config``'s socket (with ``SO_SNDBUF`` unless 0), serve until stopped, close it."""
    sock = config.bind_socket()
    if send_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    try:
        new_server(config, accept_batch).run(sockets=[sock])
    finally:
        sock.close()


def run(
    app: ASGIApp | str,
    *,
    host: str | None = None,
    port: int | None = None,
    settings: Settings | None = None,
    **uvicorn_options: Any,
) -> None:
    """Serve any ASGI app (a FastAPI or Starlette app using mianzhang's responses, say) the
    way ``mianzhang serve`` serves its own, until SIGINT or SIGTERM (see the module
    docstring for what that adds to ``uvicorn.run``).

    ``app``: the app, or its import string (``"module:attribute"``). ``settings``: the
    server's settings (header limits and deadlines, stream send buffer and unsent limit,
    ``accept_batch``, ``max_connections``, ``graceful_timeout``, ``socket_send_buffer``);
    by default :func:`~mianzhang.server.load_settings` (the ``MIANZHANG_*`` environment).
    ``host`` and ``port`` default to the settings'. ``uvicorn_options`` go to
    ``uvicorn.Config`` as given (``lifespan``, ``log_level``, ``factory``, ``root_path``,
    ``proxy_headers``...); ``http`` and ``workers`` are refused: the protocol is this
    server's, and several processes are ``mianzhang serve --workers``'s business.
    Raises :class:`~mianzhang.ConfigError` for invalid settings, before any socket opens.
    """
    from ._settings import load_settings

    refused = sorted({"http", "workers", "uds", "fd"} & set(uvicorn_options))
    if refused:
        raise TypeError(f"mianzhang.server.run() takes no {', '.join(refused)} option")
    settings = settings or load_settings()
    config = uvicorn.Config(
        app,
        **{
            "host": host or settings.host,
            "port": settings.port if port is None else port,
            "http": guarded_protocol(settings),
            # uvicorn counts the connection it refuses: N + 1 lets N be served
            "limit_concurrency": settings.max_connections + 1,
            "timeout_graceful_shutdown": int(settings.graceful_timeout) or None,
            **uvicorn_options,
        },
    )
    serve_config(config, settings.socket_send_buffer, settings.accept_batch)
