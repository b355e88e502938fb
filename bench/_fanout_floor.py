"""The floor of ``bench/fanout.py``: no ASGI, no HTTP framework, just uvloop transports.

    python -m bench._fanout_floor --port PORT [--ping SECONDS]

A ``GET`` gets a fixed SSE response head and its transport joins the subscribers; a ``POST``
gets ``201`` and its body is written, as one pre-framed chunk, to every subscriber's
transport in one loop (``transport.write`` is a C call in uvloop). Heartbeats: one timer per
connection, re-armed after each ping. This is the cheapest server Python can be, so what the
client measures against it is the measurement's own floor (kernel, loopback, client), not a
server's cost.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from typing import Any

import uvloop

HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
)
CREATED = b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n"
PING_CHUNK = b"8\r\n: ping\n\n\r\n"
LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


class Floor(asyncio.Protocol):
    subscribers: set[asyncio.Transport]
    ping: float

    def __init__(self) -> None:
        self.transport: Any = None
        self.buffer = b""
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.subscribers.discard(self.transport)
        if self.timer is not None:
            self.timer.cancel()

    def _ping(self) -> None:
        self.transport.write(PING_CHUNK)
        self.timer = asyncio.get_running_loop().call_later(self.ping, self._ping)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end]
            if head.startswith(b"GET"):
                self.buffer = self.buffer[end + 4 :]
                self.transport.write(HEAD)
                self.subscribers.add(self.transport)
                self.timer = asyncio.get_running_loop().call_later(self.ping, self._ping)
                continue
            found = LENGTH.search(head)
            length = int(found.group(1)) if found else 0
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            self.transport.write(CREATED)
            event = b"data: " + body + b"\n\n"
            chunk = b"%x\r\n" % len(event) + event + b"\r\n"
            for transport in self.subscribers:
                transport.write(chunk)


async def main(port: int, ping: float) -> None:
    Floor.subscribers = set()
    Floor.ping = ping
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Floor, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ping", type=float, default=15.0)
    args = parser.parse_args()
    uvloop.run(main(args.port, args.ping))
