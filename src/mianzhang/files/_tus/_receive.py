"""One ``PATCH`` body appended to an upload's part file: what is kept, and why.

Guarantees of :func:`receive_patch`:

* The bytes are appended at ``offset``, in order, never past the upload's length (a body
  that goes beyond is cut with :class:`UploadTooLarge` before the excess is written).
* However the body ends (complete, client gone, too slow, too long, or the claim's scope
  cancelled by a newer request or by draining), everything received is flushed to the disk,
  under a shield, before this returns: tus clients resume from the offset it reports.
* With an ``Upload-Checksum``, the request's bytes are kept only when the body arrived whole
  and its digest matches; otherwise the part file is truncated back to ``offset`` (and a whole
  body with the wrong digest is reported as :class:`ChecksumMismatch`).
* The running sha-256 of the upload is carried to the next ``PATCH`` (in this process) only
  while every byte since the first has gone through it; it is saved even when the request is
  cancelled, so completion never needs to re-read the file in the common case.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
from starlette.requests import ClientDisconnect

from ..._errors import ChecksumMismatch, FilesError, UploadStalled, UploadTooLarge
from .._progress import ProgressPublisher
from .._settings import FilesSettings
from .._sink import ChunkWriter
from .._stats import FilesStats
from .._upload import limited_body
from ._headers import CHECKSUMS
from ._store import TusStore, TusUpload

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = ["PatchOutcome", "RunningHashes", "receive_patch"]


class RunningHashes:
    """The sha-256 of each upload's bytes so far, kept between ``PATCH``es in this process."""

    def __init__(self) -> None:
        self._hashes: dict[str, tuple[int, _Hash]] = {}

    def resume(self, upload_id: str, offset: int) -> _Hash | None:
        """The hash of bytes ``0..offset`` (taken out: the caller keeps it back with
        :meth:`keep`), a fresh one at offset 0, or ``None`` when it is not known here."""
        running = self._hashes.pop(upload_id, None)
        if running is not None and running[0] == offset:
            return running[1]
        return hashlib.sha256() if offset == 0 else None

    def keep(self, upload_id: str, offset: int, hasher: _Hash) -> None:
        self._hashes[upload_id] = (offset, hasher)

    def forget(self, upload_id: str) -> None:
        self._hashes.pop(upload_id, None)


@dataclass
class PatchOutcome:
    """What a ``PATCH`` left: the upload's ``offset`` now, the running ``whole`` hash of bytes
    ``0..offset`` if known, and the ``failure`` to report (the kept bytes stand)."""

    offset: int
    whole: _Hash | None
    failure: FilesError | None


@dataclass
class _Body:
    """How the body ended: ``complete`` (read to its end) or with a ``failure``."""

    complete: bool = False
    failure: FilesError | None = None


async def receive_patch(
    chunks: AsyncGenerator[bytes, None],
    upload: TusUpload,
    offset: int,
    checksum: tuple[str, bytes] | None,
    *,
    scope: anyio.CancelScope,
    store: TusStore,
    hashes: RunningHashes,
    progress: ProgressPublisher,
    settings: FilesSettings,
    stats: FilesStats | None,
) -> PatchOutcome:
    """Append ``chunks`` (a request body) to ``upload`` at ``offset`` (see the module
    docstring); the body is read inside ``scope``, which a newer request may cancel."""
    whole = hashes.resume(upload.id, offset)
    request_hash = CHECKSUMS[checksum[0]]() if checksum is not None else None
    hashers = [h for h in (whole, request_hash) if h is not None]
    body = _Body()
    kept = offset
    async with (
        _part_file(store, upload.id) as fd,
        ChunkWriter(
            fd,
            offset=offset,
            limit=upload.length,
            hashers=hashers,
            flush_size=settings.write_buffer,
        ) as writer,
    ):
        try:
            with scope:
                await _take_body(chunks, writer, progress, settings, stats, body)
        finally:
            # Keep what was received (the point of tus), even when cancelled.
            with anyio.CancelScope(shield=True):
                await writer.flush()
                kept = writer.written
                if not await _verified(fd, offset, checksum, request_hash, body):
                    kept, whole = offset, None  # this request's bytes were dropped
                if whole is not None:
                    hashes.keep(upload.id, kept, whole)
    return PatchOutcome(kept, whole, body.failure)


@asynccontextmanager
async def _part_file(store: TusStore, upload_id: str) -> AsyncIterator[int]:
    """A write descriptor on the upload's part file, closed on leaving."""
    fd = await anyio.to_thread.run_sync(store.open_part, upload_id)
    try:
        yield fd
    finally:
        os.close(fd)


async def _take_body(
    chunks: AsyncGenerator[bytes, None],
    writer: ChunkWriter,
    progress: ProgressPublisher,
    settings: FilesSettings,
    stats: FilesStats | None,
    body: _Body,
) -> None:
    """Write the body's chunks, publishing progress; record in ``body`` how it ended. A
    vanished client ends it quietly; a stalled or too long body ends it with a failure."""
    stream = limited_body(
        chunks,
        window=settings.upload_idle_timeout,
        min_rate=settings.upload_min_rate,
        stats=stats,
    )
    try:
        async with aclosing(stream) as limited:
            async for chunk in limited:
                await writer.write(chunk)
                await progress.update(writer.received)
        body.complete = True
    except ClientDisconnect:
        pass
    except (UploadTooLarge, UploadStalled) as exc:
        body.failure = exc


async def _verified(
    fd: int,
    offset: int,
    checksum: tuple[str, bytes] | None,
    request_hash: _Hash | None,
    body: _Body,
) -> bool:
    """Whether this request's bytes may stay: always without ``Upload-Checksum``; with one,
    only when the body arrived whole and matches it. If not, the part file is truncated back
    to ``offset`` (and a whole body that does not match records a :class:`ChecksumMismatch`)."""
    if checksum is None or request_hash is None:
        return True
    if body.complete and request_hash.digest() == checksum[1]:
        return True
    # unverifiable or wrong: drop this request's bytes
    await anyio.to_thread.run_sync(os.ftruncate, fd, offset)
    if body.complete:
        body.failure = ChecksumMismatch(checksum[1].hex(), request_hash.hexdigest())
    return False
