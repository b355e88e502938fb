"""Streaming uploads of a raw request body, and the limits every upload shares (declared
size, minimum rate). ``multipart/form-data`` bodies are in ``_multipart``.

Guarantees, for raw bodies and multipart ones alike:

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
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from urllib.parse import unquote

import anyio
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

__all__ = ["check_declared_size", "content_length", "limited_body", "receive_raw"]


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
    windows = _RateWindows(window, max(1, int(min_rate * window)))
    try:
        while True:
            now = time.monotonic()
            windows.close_ended(now)
            chunk = await _next_chunk(body, windows, now)
            if chunk is None:
                return
            windows.close_ended(time.monotonic())
            windows.got += len(chunk)
            if stats is not None:
                stats.upload_bytes += len(chunk)
            yield chunk
    finally:
        await body.aclose()


class _RateWindows:
    """Consecutive windows of ``window`` seconds from now on, each needing ``need`` bytes;
    ``got`` counts the bytes of the current one."""

    def __init__(self, window: float, need: int) -> None:
        self.window = window
        self.need = need
        self.started = time.monotonic()
        self.got = 0

    def close_ended(self, now: float) -> None:
        """Move past the windows ended by ``now``; :class:`UploadStalled` if one lacked bytes."""
        while now >= self.started + self.window:
            if self.got < self.need:
                raise UploadStalled(self.window, self.need)
            self.started += self.window
            self.got = 0

    def deadline(self) -> float:
        """Until when to wait for the next chunk: the end of this window if it still lacks
        bytes, else the end of the next one."""
        return self.started + (self.window if self.got < self.need else 2 * self.window)


async def _next_chunk(
    body: AsyncGenerator[bytes, None], windows: _RateWindows, now: float
) -> bytes | None:
    """``body``'s next chunk (``None`` at its end); :class:`UploadStalled` if none arrives
    before ``windows.deadline()`` (``now`` being the current time). The wait is only cut
    when the upload fails: cancelling ``anext`` ends the body generator, so it must never be
    cancelled for a body that goes on."""
    with anyio.move_on_after(windows.deadline() - now):
        try:
            return await anext(body)
        except StopAsyncIteration:
            return None
    raise UploadStalled(windows.window, windows.need)


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
    lease_ttl: float | None = None,
) -> FileMeta:
    """Store a raw request body as a new file and return its metadata.

    ``name`` (the client's file name) falls back to the request's ``Content-Disposition``.
    Raises :class:`FilesError` subclasses, or whatever ``body`` raises when the client
    disconnects; nothing is kept then. Progress is published to ``upload:{id}``, whose
    producer lease (with ``lease_ttl``) this request holds until it ends (``_progress``):
    :class:`~mianzhang.LeaseLost` if it is lost meanwhile.
    """
    length = check_declared_size(headers, settings.max_upload_size)
    described = _Described.of(headers, name)
    progress = ProgressPublisher(
        log,
        new_file_id(),
        length,
        interval=settings.progress_interval,
        step=settings.progress_step,
        ttl_after_close=settings.progress_ttl,
        lease_ttl=lease_ttl,
    )
    async with progress.producing():
        meta = await _store_body(body, length, described, progress, storage, settings)
        url = url_for(meta.id) if url_for is not None else f"/v1/files/{meta.id}"
        await progress.complete(size=meta.size, sha256=meta.sha256, url=url)
    return meta


@dataclass(frozen=True, slots=True)
class _Described:
    """What a raw upload's headers say of the file: its name, type and announced sha-256."""

    name: str | None
    content_type: str
    expected_sha256: str | None

    @classmethod
    def of(cls, headers: Headers, name: str | None) -> _Described:
        return cls(
            name=clean_filename(name or _disposition_filename(headers.get("content-disposition"))),
            content_type=clean_content_type(headers.get("content-type")),
            expected_sha256=expected_sha256(
                repr_digest=headers.get("repr-digest"),
                content_digest=headers.get("content-digest"),
                x_checksum_sha256=headers.get("x-checksum-sha256"),
            ),
        )


async def _store_body(
    body: AsyncIterator[bytes],
    length: int | None,
    described: _Described,
    progress: ProgressPublisher,
    storage: FileStorage,
    settings: FilesSettings,
) -> FileMeta:
    """Write ``body`` into a new file ``progress.upload_id`` and commit it once complete
    (``length`` bytes if declared, the announced digest if any); on any failure the
    temporary file is removed and the failure published before the exception goes on."""
    received = 0
    try:
        limit, flush_size = settings.max_upload_size, settings.write_buffer
        async with UploadSink(
            storage, progress.upload_id, limit=limit, flush_size=flush_size
        ) as sink:
            await progress.start()
            async for chunk in body:
                await sink.write(chunk)
                received = sink.received
                await progress.update(received)
            if length is not None and received != length:
                raise InvalidUpload(f"body has {received} bytes, Content-Length said {length}")
            return await sink.commit(
                name=described.name,
                content_type=described.content_type,
                expected_sha256=described.expected_sha256,
            )
    except FilesError as exc:
        await _shielded(progress, str(exc), received)
        raise
    except BaseException:
        await _shielded(progress, "the upload was interrupted", received)
        raise
