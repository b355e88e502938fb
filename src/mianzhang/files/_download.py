"""Serving a stored file: conditional requests, byte ranges, streaming without buffering.

:func:`~._plan.plan_download` (pure) decides the status, the headers and the byte ranges to
send; :class:`FileDownload` is the ASGI response that carries the plan out.

Guarantees:

* Never more than one chunk (``chunk_size``) of the file in memory per response (plus what
  the server buffers): the body is read chunk by chunk and each chunk handed to the server,
  whose ``send`` waits while its write buffer is full (back-pressure). A chunk that is all in
  the page cache is read on the event loop with ``preadv(RWF_NOWAIT)``, which fails rather
  than wait for the disk; otherwise the read runs in a worker thread. The loop never blocks
  on the disk.
* When the server offers the ASGI ``http.response.zerocopysend`` extension, the kernel copies
  the bytes (``sendfile``) and Python never sees them; for a full 200 response the
  ``http.response.pathsend`` extension is used when that is the one offered. uvicorn offers
  neither (checked in uvicorn 0.54), so there the chunked reads are used.
* A client that disconnects stops the transfer at the next chunk (servers of ASGI spec < 2.4
  are watched with a listener on ``receive``, as Starlette does), and the file descriptor is
  closed in ``finally``.
* ``HEAD`` answers the headers of the corresponding ``GET`` without a body. ``Range`` is
  honoured for ``GET`` only (§14.2: range handling is defined for GET alone).
"""

from __future__ import annotations

import os

import anyio
import anyio.to_thread
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .._errors import FileNotFound
from ._http import error_response, files_error_response
from ._names import DEFAULT_CONTENT_TYPE
from ._plan import DownloadPlan, plan_download
from ._ranges import DEFAULT_MAX_RANGES, DEFAULT_MAX_SPECS
from ._stats import FilesStats
from ._storage import FileStorage, OpenedFile

__all__ = ["FileDownload"]

DEFAULT_CHUNK_SIZE = 256 * 1024
_ZEROCOPY = "http.response.zerocopysend"
_PATHSEND = "http.response.pathsend"
_RWF_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)


class FileDownload(Response):
    """ASGI response: serve stored file ``file_id`` of ``storage`` (404 JSON if missing).

    A Starlette ``Response`` so frameworks accept it as one; the status and headers are
    decided when it runs. Headers added to ``self.headers`` beforehand (by a framework or
    middleware) are sent too.
    """

    def __init__(
        self,
        storage: FileStorage,
        file_id: str,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        max_ranges: int = DEFAULT_MAX_RANGES,
        max_range_specs: int = DEFAULT_MAX_SPECS,
        stats: FilesStats | None = None,
    ) -> None:
        # Response.__init__ is not called: there is no body to render up front.
        self.status_code = 200
        self.background = None
        self.body = b""
        self.raw_headers = []
        self.storage = storage
        self.file_id = file_id
        self.chunk_size = chunk_size
        self.max_ranges = max_ranges
        self.max_range_specs = max_range_specs
        self.stats = stats
        self._nowait = _RWF_NOWAIT is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            opened = await anyio.to_thread.run_sync(self.storage.open_read, self.file_id)
        except FileNotFound as exc:
            await files_error_response(exc)(scope, receive, send)
            return
        try:
            await self._serve(opened, scope, receive, send)
        finally:
            opened.close()

    async def _serve(self, opened: OpenedFile, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"].upper()
        if method not in ("GET", "HEAD"):
            await error_response(405, "only GET and HEAD", headers={"Allow": "GET, HEAD"})(
                scope, receive, send
            )
            return
        meta = opened.meta
        plan = plan_download(
            method,
            Headers(scope=scope),
            size=opened.size,
            validators=opened.validators,
            content_type=meta.content_type if meta else DEFAULT_CONTENT_TYPE,
            filename=meta.name if meta and meta.name else opened.id,
            sha256=meta.sha256 if meta and meta.size == opened.size else None,
            max_ranges=self.max_ranges,
            max_range_specs=self.max_range_specs,
        )
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in plan.headers]
        await send(
            {
                "type": "http.response.start",
                "status": plan.status,
                "headers": headers + self.raw_headers,
            }
        )
        if not plan.send_body:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if not plan.parts:
            await send({"type": "http.response.body", "body": plan.body, "more_body": False})
            return

        stats = self.stats
        if stats is not None:
            stats.downloads += 1
            stats.active_downloads += 1
        try:
            await self._send_body(opened, plan, scope, receive, send)
        finally:
            if stats is not None:
                stats.active_downloads -= 1

    async def _send_body(
        self, opened: OpenedFile, plan: DownloadPlan, scope: Scope, receive: Receive, send: Send
    ) -> None:
        extensions = scope.get("extensions") or {}
        spec = scope.get("asgi", {}).get("spec_version", "2.0")
        watch_disconnect = tuple(int(x) for x in spec.split(".")[:2]) < (2, 4)

        async def body() -> None:
            if _ZEROCOPY in extensions:
                await self._send_zerocopy(opened, plan, send)
            elif _PATHSEND in extensions and plan.status == 200:
                await send({"type": _PATHSEND, "path": str(opened.path)})
                self._count(plan.content_length)
            else:
                await self._send_chunks(opened, plan, send)

        if not watch_disconnect:
            await body()
            return
        async with anyio.create_task_group() as group:

            async def transfer() -> None:
                await body()
                group.cancel_scope.cancel()

            group.start_soon(transfer)
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    group.cancel_scope.cancel()
                    break

    def _count(self, size: int) -> None:
        if self.stats is not None:
            self.stats.download_bytes += size

    async def _read(self, fd: int, count: int, offset: int) -> bytes:
        """``count`` bytes at ``offset``: straight from the page cache when they are all there
        (``preadv`` with ``RWF_NOWAIT`` never waits for the disk), else in a worker thread."""
        if self._nowait and _RWF_NOWAIT is not None:
            buffer = bytearray(count)
            try:
                if os.preadv(fd, [buffer], offset, _RWF_NOWAIT) == count:
                    return bytes(buffer)
            except BlockingIOError:
                pass  # not (all) cached: read it in a thread
            except OSError:
                self._nowait = False  # this file system does not support RWF_NOWAIT
        return await anyio.to_thread.run_sync(os.pread, fd, count, offset)

    async def _send_chunks(self, opened: OpenedFile, plan: DownloadPlan, send: Send) -> None:
        chunk_size = self.chunk_size
        fd = opened.fd
        pending = b""  # a small prefix waits to go out with the first bytes of its range
        for part in plan.parts:
            pending += part.prefix
            offset = part.start
            while offset <= part.end:
                count = min(chunk_size, part.end - offset + 1)
                data = await self._read(fd, count, offset)
                if len(data) != count:
                    raise OSError(f"file {opened.id} shrank while being sent")
                if pending:
                    data, pending = pending + data, b""
                await send({"type": "http.response.body", "body": data, "more_body": True})
                self._count(count)
                offset += count
        await send(
            {"type": "http.response.body", "body": pending + plan.trailer, "more_body": False}
        )

    async def _send_zerocopy(self, opened: OpenedFile, plan: DownloadPlan, send: Send) -> None:
        # A file object around our descriptor (no I/O here; the server calls sendfile).
        with open(opened.fd, "rb", buffering=0, closefd=False) as handle:  # noqa: ASYNC230
            for part in plan.parts:
                if part.prefix:
                    await send(
                        {"type": "http.response.body", "body": part.prefix, "more_body": True}
                    )
                if part.end < part.start:
                    continue
                await send(
                    {
                        "type": _ZEROCOPY,
                        "file": handle,
                        "offset": part.start,
                        "count": part.end - part.start + 1,
                        "more_body": True,
                    }
                )
                self._count(part.end - part.start + 1)
        await send({"type": "http.response.body", "body": plan.trailer, "more_body": False})
