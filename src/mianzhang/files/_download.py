"""Serving a stored file: conditional requests, byte ranges, streaming without buffering.

:func:`plan_download` is pure: from the method, the request headers and the file's size and
validators it decides the status, the headers and which byte ranges to send (RFC 9110 §13,
§14, §15.3.7). :class:`FileDownload` is the ASGI response that carries the plan out.

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
import secrets
from dataclasses import dataclass, field

import anyio
import anyio.to_thread
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .._errors import FileNotFound
from ._conditional import Precondition, Validators, evaluate_preconditions, if_range_allows
from ._digest import repr_digest
from ._http import combined_header, error_response, files_error_response
from ._names import DEFAULT_CONTENT_TYPE, content_disposition
from ._ranges import DEFAULT_MAX_RANGES, DEFAULT_MAX_SPECS, RangeOutcome, evaluate_range
from ._stats import FilesStats
from ._storage import FileStorage, OpenedFile

__all__ = ["DownloadPlan", "FileDownload", "Part", "plan_download"]

DEFAULT_CHUNK_SIZE = 256 * 1024
_ZEROCOPY = "http.response.zerocopysend"
_PATHSEND = "http.response.pathsend"
_RWF_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)


@dataclass(frozen=True, slots=True)
class Part:
    """One piece of the body: ``prefix`` bytes, then the file's bytes ``start..end``
    (inclusive; ``end < start`` means no file bytes)."""

    prefix: bytes
    start: int
    end: int

    @property
    def length(self) -> int:
        return len(self.prefix) + max(0, self.end - self.start + 1)


@dataclass(frozen=True, slots=True)
class DownloadPlan:
    """The answer to send: ``status``, ``headers``, then either the file ``parts`` followed by
    ``trailer`` (200/206), or ``body`` (304/412/416). ``send_body`` is false for HEAD."""

    status: int
    headers: list[tuple[str, str]]
    parts: list[Part] = field(default_factory=list)
    trailer: bytes = b""
    body: bytes = b""
    send_body: bool = True

    @property
    def content_length(self) -> int:
        return sum(part.length for part in self.parts) + len(self.trailer) + len(self.body)


def _representation_headers(
    validators: Validators, *, filename: str | None, sha256: str | None
) -> list[tuple[str, str]]:
    headers = [
        ("accept-ranges", "bytes"),
        ("etag", validators.etag),
        ("last-modified", validators.last_modified_header),
        ("content-disposition", content_disposition(filename)),
        ("x-content-type-options", "nosniff"),
        ("content-security-policy", "default-src 'none'; sandbox"),
    ]
    if sha256 is not None:
        headers.append(("repr-digest", repr_digest(sha256)))
    return headers


def plan_download(
    method: str,
    request_headers: Headers,
    *,
    size: int,
    validators: Validators,
    content_type: str = DEFAULT_CONTENT_TYPE,
    filename: str | None = None,
    sha256: str | None = None,
    max_ranges: int = DEFAULT_MAX_RANGES,
    max_range_specs: int = DEFAULT_MAX_SPECS,
    boundary: str | None = None,
) -> DownloadPlan:
    """Decide the response to ``method`` (GET or HEAD) for a file of ``size`` bytes.

    Order: preconditions (304/412) first, then ``If-Range``, then ``Range`` (206/416 or the
    full 200). Work is O(n log n) in the number of range-specs.
    """
    head = method == "HEAD"
    common = _representation_headers(validators, filename=filename, sha256=sha256)
    verdict = evaluate_preconditions(
        method,
        validators,
        if_match=combined_header(request_headers, "if-match"),
        if_none_match=combined_header(request_headers, "if-none-match"),
        if_modified_since=request_headers.get("if-modified-since"),
        if_unmodified_since=request_headers.get("if-unmodified-since"),
    )
    if verdict is Precondition.NOT_MODIFIED:
        return DownloadPlan(
            304,
            [("etag", validators.etag), ("last-modified", validators.last_modified_header)],
            send_body=False,
        )
    if verdict is Precondition.FAILED:
        body = b'{"error":{"type":"precondition_failed","message":"a precondition failed"}}'
        return DownloadPlan(
            412,
            [("content-type", "application/json"), ("content-length", str(len(body)))],
            body=body,
            send_body=not head,
        )

    range_header = request_headers.get("range") if method == "GET" else None
    if range_header is not None and not if_range_allows(
        request_headers.get("if-range"), validators
    ):
        range_header = None
    decision = evaluate_range(range_header, size, max_ranges=max_ranges, max_specs=max_range_specs)

    if decision.outcome is RangeOutcome.UNSATISFIABLE:
        body = (
            b'{"error":{"type":"range_not_satisfiable",'
            b'"message":"none of the requested ranges is within the file"}}'
        )
        return DownloadPlan(
            416,
            [
                ("content-range", f"bytes */{size}"),
                ("accept-ranges", "bytes"),
                ("content-type", "application/json"),
                ("content-length", str(len(body))),
            ],
            body=body,
            send_body=not head,
        )

    if decision.outcome is RangeOutcome.FULL:
        plan = DownloadPlan(
            200, [*common, ("content-type", content_type)], [Part(b"", 0, size - 1)]
        )
    elif len(decision.ranges) == 1:
        start, end = decision.ranges[0]
        plan = DownloadPlan(
            206,
            [
                *common,
                ("content-type", content_type),
                ("content-range", f"bytes {start}-{end}/{size}"),
            ],
            [Part(b"", start, end)],
        )
    else:
        mark = boundary or secrets.token_hex(16)
        parts: list[Part] = []
        for index, (start, end) in enumerate(decision.ranges):
            prefix = (b"" if index == 0 else b"\r\n") + (
                f"--{mark}\r\n"
                f"content-type: {content_type}\r\n"
                f"content-range: bytes {start}-{end}/{size}\r\n\r\n"
            ).encode("ascii")
            parts.append(Part(prefix, start, end))
        plan = DownloadPlan(
            206,
            [*common, ("content-type", f"multipart/byteranges; boundary={mark}")],
            parts,
            trailer=f"\r\n--{mark}--\r\n".encode("ascii"),
        )
    plan.headers.append(("content-length", str(plan.content_length)))
    if head:
        return DownloadPlan(plan.status, plan.headers, send_body=False)
    return plan


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
