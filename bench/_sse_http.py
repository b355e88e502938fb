"""A minimal HTTP/1.1 streaming client for benchmarks (loopback only).

One keep-alive connection per worker; a request is written in one ``write``; the chunked (or
content-length) body is read with ``asyncio`` streams; SSE events are split on blank lines.
Both OpenAI chat chunks (a non-empty ``content`` is a token, ``[DONE]`` the end) and Anthropic
Messages events (a ``text_delta`` is a token, ``message_stop`` the end) are read.
Kept deliberately small so the client's own cost is low and identical for every target.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import orjson


@dataclass
class StreamResult:
    status: int
    ttft: float | None  # seconds from request write to the first content token
    duration: float
    tokens: int
    done: bool  # saw data: [DONE] (chat) or message_stop (Messages)


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
            self.writer = self.reader = None

    async def stream_chat(
        self, path: str, body: dict[str, object], headers: dict[str, str] | None = None
    ) -> StreamResult:
        """One streamed request; a kept-alive connection the server closed meanwhile (its idle
        timeout, e.g. while the benchmark paused it) is reopened and the request sent again."""
        reused = self.writer is not None
        try:
            return await self._stream(path, body, headers)
        except ConnectionError:
            if not reused:
                raise
            await self.close()
            return await self._stream(path, body, headers)

    async def _stream(
        self, path: str, body: dict[str, object], headers: dict[str, str] | None
    ) -> StreamResult:
        if self.writer is None:
            await self._connect()
        assert self.reader is not None and self.writer is not None
        payload = orjson.dumps(body)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (
            f"POST {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n"
            f"content-type: application/json\r\naccept: text/event-stream\r\n{extra}"
            f"content-length: {len(payload)}\r\n\r\n"
        ).encode()
        start = time.perf_counter()
        self.writer.write(head + payload)
        reader = self.reader
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection before answering")
        status = int(status_line.split(b" ", 2)[1])
        chunked = False
        length: int | None = None
        close = False
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            value = value.strip().lower()
            if name == "transfer-encoding" and "chunked" in value:
                chunked = True
            elif name == "content-length":
                length = int(value)
            elif name == "connection" and value == "close":
                close = True
        ttft: float | None = None
        tokens = 0
        done = False
        buffer = b""

        def feed(data: bytes) -> None:
            nonlocal buffer, ttft, tokens, done
            buffer += data
            while True:
                end = buffer.find(b"\n\n")
                if end < 0:
                    return
                event, buffer = buffer[:end], buffer[end + 2 :]
                for line in event.split(b"\n"):
                    if not line.startswith(b"data: "):
                        continue
                    payload = line[6:]
                    if payload == b"[DONE]" or b'"message_stop"' in payload:
                        done = True
                    elif (
                        b'"content":"' in payload and b'"content":""' not in payload
                    ) or b'"text_delta"' in payload:
                        tokens += 1
                        if ttft is None:
                            ttft = time.perf_counter() - start

        if chunked:
            while True:
                size_line = await reader.readline()
                if not size_line:
                    raise ConnectionError("connection closed mid-body")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    await reader.readline()
                    break
                data = await reader.readexactly(size + 2)
                feed(data[:-2])
        elif length is not None:
            feed(await reader.readexactly(length))
        else:
            feed(await reader.read())
            close = True
        duration = time.perf_counter() - start
        if close:
            await self.close()
        return StreamResult(status, ttft, duration, tokens, done)
