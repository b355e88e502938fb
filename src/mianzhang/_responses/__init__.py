"""Layer 2: streaming responses for any ASGI app (Starlette, FastAPI, or bare ASGI).

:class:`EventSourceResponse` (SSE), :class:`NDJSONResponse` (one JSON value per line) and
:class:`TextStreamResponse` (chunked text) share one engine with these guarantees:

* **Delivery.** Every item the iterator yields is sent, in order. Items the iterator produced
  while the socket was still busy are coalesced into one ASGI message; an item that is ready is
  never held back waiting for more (the sender runs whenever the producer awaits anything).
* **Bounded memory.** At most ``max_buffer`` bytes (plus one item) are produced and not yet
  accepted by the server's ``send``; a client that stops reading stalls the iterator, it does
  not grow a queue.
* **Disconnect.** When the peer goes away (ASGI ``http.disconnect``, or ``OSError`` from
  ``send``) the iterator is cancelled and closed at once, even while a send is blocked, so its
  ``finally`` blocks run; ``client_close_handler_callable`` is awaited. Sync iterables run in
  the thread pool and are closed (``close()``) the same way.
* **Slow client.** A send blocked longer than ``send_timeout`` seconds ends the stream the same
  way and is counted in :class:`StreamSupervisor` statistics. Where the server offers its
  transport (the ASGI extension ``mianzhang.transport``: ``mianzhang serve``, or uvicorn with
  ``--http mianzhang.server:HttpProtocol``), so does a reader that acknowledged nothing for
  ``send_timeout`` seconds even if no send blocked, and a cut resets the connection at once.
* **Errors.** An exception before anything was sent propagates (the framework answers a normal
  HTTP error). After the headers it becomes a final in-band error (an SSE ``error`` event with a
  JSON ``{"type", "message"}`` body, no traceback) and the stream ends cleanly; with
  ``raise_errors=True`` (the peers' behaviour) it aborts the body and propagates instead, and
  a send timeout raises :class:`~mianzhang.SendTimeout`.
* **Cleanup bound.** ``cleanup_timeout`` seconds (default: no limit) bound the wait for the
  iterator's cleanup once the stream stops it; what still runs then is cancelled.
* **Heartbeat.** A ping (an SSE comment by default) only after ``ping`` idle seconds.
* **Graceful shutdown.** When the :class:`StreamSupervisor` drains (server shutdown), every live
  stream flushes what it holds, sends a final ``reconnect`` event with a jittered ``retry:``
  hint, and ends. No monkey-patching of uvicorn: the supervisor is triggered by its signal hook,
  by the ``mianzhang serve`` server, or by the application itself. A ``shutdown_event`` given
  to a response is set when the drain reaches it (sse-starlette's cooperative farewell), and
  setting it from the application drains that one stream.
* **HEAD.** A ``HEAD`` request gets the headers a ``GET`` gets and an empty body; the iterator
  is not started (an endless stream would otherwise never complete a body the client does not
  read).
* **WebSocket.** A WebSocket scope gets the response as a denial response
  (``websocket.http.response.*`` messages), as Starlette and sse-starlette 3.7 answer it.

The package, one job per module, in the order a response runs:

* ``_formats``: the three response classes, how items become bytes;
* ``_response``: their shared base: options, headers, the ASGI entry point, ``HEAD``;
* ``_engine``: one running stream: its start, the disconnect watcher, the drain, the cleanup;
* ``_sender``: its sending half: headers, body, heartbeat, and bytes pushed by a live source
  (sent at once to an idle connection, from the source's pass);
* ``_send``: a send's first step run at once, the rest (and the send timeout) only if it
  suspends;
* ``_producer``: the iterator in a task, encoding into the bounded buffer;
* ``_content``: async, sequence and sync (thread pool) content as one async iterator, and
  live sources (``push_iter``: ``mianzhang.log``'s readers);
* ``_cleanup``: awaiting a stream's tasks at its end, within ``cleanup_timeout``;
* ``_turns``: fair turns between the busy producers of one event loop;
* ``_heartbeats``: one timer per event loop for every stream's heartbeat;
* ``_flag``: the one-waiter flag the producer and the sender wake each other with;
* ``_transport``: the ``mianzhang.transport`` extension (what a server offers about the
  connection) and its implementation over an asyncio transport;
* ``_connection``: what a stream does with it: send buffer, acknowledgement watchdog, reset;
* ``_watchdog``: one timer per check interval and event loop for every stream's watchdog;
* ``_cuts``, ``_ticks``, ``_loop_local``: cut streams torn down in batches; the loop's
  iteration count; the per-loop objects all these shared timers and queues live in;
* ``_supervisor``: live streams, statistics, drain and the signal hook.
"""

from ._content import Content as Content
from ._formats import EventSourceResponse, NDJSONResponse, TextStreamResponse
from ._response import DEFAULT_MAX_BUFFER as DEFAULT_MAX_BUFFER
from ._response import DEFAULT_OPEN_TIMEOUT as DEFAULT_OPEN_TIMEOUT
from ._response import DEFAULT_PING as DEFAULT_PING
from ._response import DEFAULT_SEND_TIMEOUT as DEFAULT_SEND_TIMEOUT
from ._response import _StreamingBase as _StreamingBase
from ._supervisor import SUPERVISOR_STATE_KEY as SUPERVISOR_STATE_KEY
from ._supervisor import StreamStatistics, StreamSupervisor

__all__ = [
    "EventSourceResponse",
    "NDJSONResponse",
    "StreamStatistics",
    "StreamSupervisor",
    "TextStreamResponse",
]
