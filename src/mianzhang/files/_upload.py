"""Streaming uploads: a raw request body, or ``multipart/form-data`` parsed as it arrives.

Guarantees, for both kinds:

* The body is consumed chunk by chunk into temporary files (see :class:`UploadSink`); memory
  per upload file is bounded by three write buffers plus one network chunk, whatever the size.
* ``max_upload_size`` is enforced from ``Content-Length`` before reading anything, and again
  while streaming (a body without ``Content-Length`` or lying about it): 413 as soon as it
  is exceeded, with ``Connection: close``.
* A file is moved into place only once complete (and, for raw bodies, matching the announced
  sha-256: ``Repr-Digest``/``Content-Digest``/``X-Checksum-Sha256``; a mismatch is 400).
  Any failure, including a client that disconnects and a cancelled request, removes every
  temporary file of the request in ``finally``: nothing is kept.
* The client's file name is metadata only (the sidecar); the stored name is a generated id.

Multipart parsing uses python-multipart's streaming ``MultipartParser`` (no spooling): its
own limits on part header count and size apply, plus ours on the boundary (RFC 2046: at most
70 characters from the ``bchars`` set), the number of parts and of files, and the size of
non-file fields (kept in memory only up to ``max_field_size``, then discarded).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import anyio
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.datastructures import Headers

from .._errors import FilesError, InvalidUpload, UploadStalled, UploadTooLarge
from ..log import EventLog
from ._digest import expected_sha256
from ._ids import new_file_id
from ._names import clean_content_type, clean_filename
from ._progress import ProgressPublisher
from ._settings import FilesSettings
from ._sink import UploadSink
from ._stats import FilesStats
from ._storage import FileMeta, FileStorage

__all__ = [
    "check_declared_size",
    "content_length",
    "limited_body",
    "receive_multipart",
    "receive_raw",
]

_logger = logging.getLogger("mianzhang.files")
# RFC 2046 §5.1.1: boundary := 0*69<bchars> bcharsnospace
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


def content_length(headers: Headers) -> int | None:
    """The request's ``Content-Length`` (``None`` if absent); :class:`InvalidUpload` if bad."""
    values = headers.getlist("content-length")
    if not values:
        return None
    if len(set(values)) != 1 or not values[0].isascii() or not values[0].isdigit():
        raise InvalidUpload("invalid Content-Length")
    return int(values[0])


def check_declared_size(headers: Headers, limit: int) -> int | None:
    """``Content-Length`` if within ``limit``; :class:`UploadTooLarge` before reading if not."""
    length = content_length(headers)
    if length is not None and length > limit:
        raise UploadTooLarge(limit)
    return length


async def limited_body(
    body: AsyncGenerator[bytes, None],
    *,
    window: float,
    min_rate: float = 0.0,
    stats: FilesStats | None = None,
) -> AsyncGenerator[bytes, None]:
    """``body``'s chunks, cut with :class:`UploadStalled` when fewer than
    ``max(1, min_rate * window)`` bytes arrive within a window of ``window`` seconds.

    uvicorn resets its own timer on every byte, so a client trickling one byte at a time
    (slowloris) would hold a connection and a temporary file forever; this is the deadline it
    lacks. Windows are consecutive and fixed (they start when the previous one ends), so the
    check is O(1) per chunk. Time the consumer spends on a chunk (writing it) counts too: with
    the defaults (60 s, 1 KiB/s) a window asks for 60 KiB, far below any disk. Each chunk's
    size is added to ``stats.upload_bytes``. Closing this generator closes ``body``.
    """
    need = max(1, int(min_rate * window))
    started = time.monotonic()
    got = 0

    def close_windows(now: float) -> None:
        nonlocal started, got
        while now >= started + window:  # each window that has ended must have had ``need``
            if got < need:
                raise UploadStalled(window, need)
            started += window
            got = 0

    try:
        while True:
            now = time.monotonic()
            close_windows(now)
            # Wait until the end of this window if it still lacks bytes, else until the end of
            # the next one. The wait is only cut when the upload fails: cancelling ``anext``
            # ends the body generator, so it must never be cancelled for a body that goes on.
            deadline = started + (window if got < need else 2 * window)
            with anyio.move_on_after(deadline - now) as scope:
                try:
                    chunk = await anext(body)
                except StopAsyncIteration:
                    return
            if scope.cancelled_caught:
                raise UploadStalled(window, need)
            close_windows(time.monotonic())
            got += len(chunk)
            if stats is not None:
                stats.upload_bytes += len(chunk)
            yield chunk
    finally:
        await body.aclose()


async def _shielded(publisher: ProgressPublisher, error: str, received: int) -> None:
    """Publish a failure even from a cancelled request (bounded to one second)."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
        await publisher.fail(error, received)


def _disposition_filename(value: str | None) -> str | None:
    """The ``filename*`` (UTF-8) or ``filename`` of a request ``Content-Disposition``."""
    if not value:
        return None
    name: str | None = None
    for param in value.split(";")[1:]:
        key, _, raw = param.strip().partition("=")
        key = key.strip().lower()
        if key == "filename*" and raw.lower().startswith("utf-8''"):
            return unquote(raw[7:], encoding="utf-8", errors="replace")
        if key == "filename":
            name = raw.strip().strip('"')
    return name


async def receive_raw(
    body: AsyncIterator[bytes],
    headers: Headers,
    *,
    storage: FileStorage,
    settings: FilesSettings,
    log: EventLog | None,
    name: str | None = None,
    url_for: Callable[[str], str] | None = None,
) -> FileMeta:
    """Store a raw request body as a new file and return its metadata.

    ``name`` (the client's file name) falls back to the request's ``Content-Disposition``.
    Raises :class:`FilesError` subclasses, or whatever ``body`` raises when the client
    disconnects; nothing is kept then. Progress is published to ``upload:{id}``.
    """
    limit = settings.max_upload_size
    length = check_declared_size(headers, limit)
    expected = expected_sha256(
        repr_digest=headers.get("repr-digest"),
        content_digest=headers.get("content-digest"),
        x_checksum_sha256=headers.get("x-checksum-sha256"),
    )
    file_name = clean_filename(name or _disposition_filename(headers.get("content-disposition")))
    content_type = clean_content_type(headers.get("content-type"))
    file_id = new_file_id()
    progress = ProgressPublisher(
        log,
        file_id,
        length,
        interval=settings.progress_interval,
        step=settings.progress_step,
    )
    received = 0
    try:
        async with UploadSink(
            storage, file_id, limit=limit, flush_size=settings.write_buffer
        ) as sink:
            await progress.start()
            async for chunk in body:
                await sink.write(chunk)
                received = sink.received
                await progress.update(received)
            if length is not None and received != length:
                raise InvalidUpload(f"body has {received} bytes, Content-Length said {length}")
            meta = await sink.commit(
                name=file_name, content_type=content_type, expected_sha256=expected
            )
    except FilesError as exc:
        await _shielded(progress, str(exc), received)
        raise
    except BaseException:
        await _shielded(progress, "the upload was interrupted", received)
        raise
    url = url_for(meta.id) if url_for is not None else f"/v1/files/{meta.id}"
    await progress.complete(size=meta.size, sha256=meta.sha256, url=url)
    return meta


# -- multipart --------------------------------------------------------------------------------
def multipart_boundary(content_type: str) -> bytes:
    """The boundary of a ``multipart/form-data`` content type; :class:`InvalidUpload` if it
    is missing or not an RFC 2046 boundary (checked before any parsing)."""
    if len(content_type) > 1024:
        raise InvalidUpload("Content-Type too long")
    essence, params = parse_options_header(content_type)
    if essence != b"multipart/form-data":
        raise InvalidUpload("expected multipart/form-data")
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidUpload("multipart/form-data without a boundary")
    text = boundary.decode("latin-1")
    if _BOUNDARY.fullmatch(text) is None:
        raise InvalidUpload("invalid multipart boundary (RFC 2046: 1 to 70 bchars)")
    return boundary


@dataclass
class _Part:
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    field_name: bytes = b""
    value_name: bytes = b""
    sink: UploadSink | None = None
    name: str | None = None
    content_type: str = ""
    field_size: int = 0
    skip: bool = False


class _MultipartReceiver:
    """Drives ``MultipartParser``: its synchronous callbacks queue events, which are then
    handled asynchronously (file data written through :class:`UploadSink`) before the next
    network chunk is parsed, so at most one chunk's worth of events is queued."""

    def __init__(
        self,
        boundary: bytes,
        storage: FileStorage,
        settings: FilesSettings,
        limit: int,
        stack: AsyncExitStack,
    ) -> None:
        self.stack = stack
        self.storage = storage
        self.settings = settings
        self.limit = limit
        self.events: list[tuple[str, bytes]] = []
        self.parts = 0
        self.files: list[UploadSink] = []
        self.names: dict[str, tuple[str | None, str]] = {}
        self.part: _Part | None = None
        self.ended = False
        self.stored = 0
        callbacks: Any = {
            "on_part_begin": lambda: self.events.append(("begin", b"")),
            "on_header_field": lambda d, s, e: self.events.append(("hfield", d[s:e])),
            "on_header_value": lambda d, s, e: self.events.append(("hvalue", d[s:e])),
            "on_header_end": lambda: self.events.append(("hend", b"")),
            "on_headers_finished": lambda: self.events.append(("headers", b"")),
            "on_part_data": lambda d, s, e: self.events.append(("data", d[s:e])),
            "on_part_end": lambda: self.events.append(("end", b"")),
            "on_end": lambda: self.events.append(("done", b"")),
        }
        try:
            self.parser = MultipartParser(
                boundary,
                callbacks,
                max_header_count=settings.max_part_headers,
                max_header_size=settings.max_part_header_size,
            )
        except FormParserError as exc:
            raise InvalidUpload(str(exc)) from exc

    async def feed(self, chunk: bytes) -> None:
        try:
            self.parser.write(chunk)
        except FormParserError as exc:
            raise InvalidUpload(f"malformed multipart body: {exc}") from exc
        events, self.events = self.events, []
        for kind, data in events:
            await self._handle(kind, data)

    async def _handle(self, kind: str, data: bytes) -> None:
        if kind == "data":
            part = self.part
            if part is None or part.skip:
                return
            if part.sink is not None:
                await part.sink.write(data)
                return
            part.field_size += len(data)
            if part.field_size > self.settings.max_field_size:
                raise InvalidUpload(f"a form field exceeds {self.settings.max_field_size} bytes")
        elif kind == "begin":
            self.parts += 1
            if self.parts > self.settings.max_parts:
                raise InvalidUpload(f"more than {self.settings.max_parts} multipart parts")
            self.part = _Part()
        elif kind == "hfield" and self.part is not None:
            self.part.field_name += data
        elif kind == "hvalue" and self.part is not None:
            self.part.value_name += data
        elif kind == "hend" and self.part is not None:
            self.part.headers.append((self.part.field_name.lower(), self.part.value_name))
            self.part.field_name = self.part.value_name = b""
        elif kind == "headers" and self.part is not None:
            await self._start_part(self.part)
        elif kind == "end":
            self.part = None
        elif kind == "done":
            self.ended = True

    async def _start_part(self, part: _Part) -> None:
        headers = dict(part.headers)
        disposition = headers.get(b"content-disposition")
        if disposition is None:
            raise InvalidUpload("a multipart part has no Content-Disposition")
        kind, params = parse_options_header(disposition)
        if kind != b"form-data" or b"name" not in params:
            raise InvalidUpload("a multipart part is not form-data with a name")
        filename = params.get(b"filename")
        if filename is None:
            return  # a plain field: counted, bounded, not kept
        if not filename:
            part.skip = True  # an empty file input of a browser form
            return
        if len(self.files) >= self.settings.max_files:
            raise InvalidUpload(f"more than {self.settings.max_files} files")
        part.name = clean_filename(filename.decode("utf-8", errors="replace"))
        raw_type = headers.get(b"content-type", b"").decode("latin-1")
        part.content_type = clean_content_type(raw_type)
        sink = await self.stack.enter_async_context(
            UploadSink(
                self.storage, new_file_id(), limit=self.limit, flush_size=self.settings.write_buffer
            )
        )
        self.files.append(sink)
        self.names[sink.file_id] = (part.name, part.content_type)
        part.sink = sink


async def receive_multipart(
    body: AsyncIterator[bytes],
    headers: Headers,
    *,
    storage: FileStorage,
    settings: FilesSettings,
) -> list[FileMeta]:
    """Store every file part of a ``multipart/form-data`` body; return their metadata in
    order. All or nothing: files are committed only after the closing boundary, and any
    failure removes what this request stored. (No progress events: the ids are not known to
    the client before the response; live progress is what tus uploads are for.)"""
    limit = settings.max_upload_size
    check_declared_size(headers, limit)
    boundary = multipart_boundary(headers.get("content-type", ""))
    received = 0
    committed: list[FileMeta] = []
    try:
        # The stack owns every part's UploadSink: leaving it discards what was not committed.
        async with AsyncExitStack() as stack:
            receiver = _MultipartReceiver(boundary, storage, settings, limit, stack)
            async for chunk in body:
                received += len(chunk)
                if received > limit:
                    raise UploadTooLarge(limit)
                await receiver.feed(chunk)
            if not receiver.ended:
                raise InvalidUpload("the multipart body ended before its closing boundary")
            if not receiver.files:
                raise InvalidUpload("no file in the multipart body")
            for sink in receiver.files:
                name, content_type = receiver.names[sink.file_id]
                committed.append(await sink.commit(name=name, content_type=content_type))
    except BaseException:
        for meta in committed:  # all or nothing (two unlinks each: synchronous, cancel-proof)
            storage.delete(meta.id)
        raise
    return committed
