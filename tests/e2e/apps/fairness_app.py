"""App for ``tests/e2e/test_responses_fairness.py``: bulk streams next to a new stream.

* ``GET /bulk``: pre-encoded 100-byte events as fast as the response takes them; the generator
  never awaits anything of its own (bounded: it ends after 50 million events, 5 GB).
* ``GET /one``: one event (``data: one``), then idle (bounded: an hour).
* ``GET /one-sync``: the same from a plain ``def`` handler, which Starlette runs in the thread
  pool: the hand-off to a worker thread and back needs the GIL while the loop is busy.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mianzhang import EventSourceResponse

BULK_EVENT = b"data: " + b"x" * 92 + b"\n\n"
assert len(BULK_EVENT) == 100
BULK_EVENTS = 50_000_000
ONE_EVENT = b"data: one\n\n"
IDLE_SECONDS = 3600.0


async def bulk_events() -> AsyncIterator[bytes]:
    for _ in range(BULK_EVENTS):
        yield BULK_EVENT


async def one_event() -> AsyncIterator[bytes]:
    yield ONE_EVENT
    await asyncio.sleep(IDLE_SECONDS)


async def bulk(request: Request) -> Response:
    return EventSourceResponse(bulk_events(), ping=0)


async def one(request: Request) -> Response:
    return EventSourceResponse(one_event(), ping=0)


def one_sync(request: Request) -> Response:
    return EventSourceResponse(one_event(), ping=0)


app = Starlette(routes=[Route("/bulk", bulk), Route("/one", one), Route("/one-sync", one_sync)])
