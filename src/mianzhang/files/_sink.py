"""Receive a body arriving in chunks into a file, hashing it on the way, within a size limit.

Chunks are gathered into batches of ``flush_size`` bytes; a worker task owned by the
:class:`ChunkWriter` writes (``pwrite``) and hashes each batch in a worker thread while the
next batch is being received (double buffering: the disk write overlaps the network
receive). The event loop never blocks on the disk, and memory per upload
stays below three batches plus one network chunk, whatever the body's size.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from .._errors import ChecksumMismatch, UploadTooLarge
from ._storage import FileMeta, FileStorage, TempFile

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = ["ChunkWriter", "UploadSink"]

DEFAULT_FLUSH_SIZE = 1 << 20


class ChunkWriter:
    """Writes chunks to ``fd`` from ``offset`` on, in order, feeding each of ``hashers`` too.

    Use as ``async with``: the block owns the worker task. ``received`` counts bytes accepted
    by :meth:`write`, ``written`` bytes on disk; after :meth:`flush` both are equal. A write
    past ``limit`` (absolute offset) raises :class:`UploadTooLarge` before anything of that
    chunk is kept. A disk error is raised by the next :meth:`write` or :meth:`flush`.

    Cancellation: the worker task is not in the caller's cancel scopes; leaving the block
    (even cancelled) stops it after at most the batch in hand and awaits it, so no thread
    touches ``fd`` once the block is left. Leaving with an exception drops batches not yet
    written; :meth:`flush` under a shielded scope in ``finally`` keeps them (tus does).
    """

    def __init__(
        self,
        fd: int,
        *,
        offset: int = 0,
        limit: int | None = None,
        hashers: Sequence[_Hash] = (),
        flush_size: int = DEFAULT_FLUSH_SIZE,
    ) -> None:
        self.fd = fd
        self.written = offset
        self.received = offset
        self.limit = limit
        self.hashers = tuple(hashers)
        self.flush_size = flush_size
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._queue: asyncio.Queue[list[bytes] | None] | None = None
        self._worker_task: asyncio.Task[None] | None = None
        self._error: Exception | None = None
        self._abandoned = False

    async def __aenter__(self) -> ChunkWriter:
        if self._worker_task is not None:
            raise RuntimeError("a ChunkWriter can be entered once")
        self._queue = asyncio.Queue(maxsize=1)
        # Owned here and awaited in __aexit__. A plain task, outside the caller's cancel
        # scopes, so that cancelling the caller never interrupts a write in the middle.
        self._worker_task = asyncio.create_task(self._worker(self._queue))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._queue is None or self._worker_task is None:
            raise RuntimeError("the ChunkWriter was not entered")
        if exc_type is not None:
            self._abandoned = True
        # Bounded: the worker takes the sentinel after at most one batch.
        with anyio.CancelScope(shield=True):
            await self._queue.put(None)
            await self._worker_task

    async def _worker(self, queue: asyncio.Queue[list[bytes] | None]) -> None:
        while True:
            batch = await queue.get()
            try:
                if batch is None:
                    return
                if self._error is None and not self._abandoned:
                    await anyio.to_thread.run_sync(self._write_batch, batch)
            except Exception as exc:  # reported to the host by write()/flush()
                self._error = exc
            finally:
                queue.task_done()

    def _check(self) -> asyncio.Queue[list[bytes] | None]:
        if self._queue is None:
            raise RuntimeError("use the ChunkWriter as 'async with'")
        if self._error is not None:
            raise self._error
        return self._queue

    async def write(self, chunk: bytes) -> None:
        queue = self._check()
        if not chunk:
            return
        if self.limit is not None and self.received + len(chunk) > self.limit:
            raise UploadTooLarge(self.limit)
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        self.received += len(chunk)
        if self._pending_size >= self.flush_size:
            # asyncio.Queue.put either enqueues or (cancelled) does not: the batch is never
            # lost or duplicated, so bytes stay in order.
            await queue.put(self._pending)
            self._pending, self._pending_size = [], 0

    async def flush(self) -> None:
        """Wait until every accepted byte is written and hashed."""
        queue = self._check()
        if self._pending:
            await queue.put(self._pending)
            self._pending, self._pending_size = [], 0
        await queue.join()
        self._check()

    def _write_batch(self, batch: list[bytes]) -> None:
        offset = self.written
        for chunk in batch:
            for hasher in self.hashers:
                hasher.update(chunk)
            view = memoryview(chunk)
            while view:
                count = os.pwrite(self.fd, view, offset)
                offset += count
                view = view[count:]
            self.written = offset


class UploadSink:
    """One upload into a fresh temporary file of ``storage``, committed under ``file_id`` by
    :meth:`commit` only once complete (and matching ``expected_sha256`` if given).

    Use as ``async with`` (it owns a :class:`ChunkWriter`): leaving the block without a
    successful commit removes the temporary file, whatever the reason (error, size limit,
    checksum mismatch, client disconnect, cancellation), after the writer has stopped.
    """

    def __init__(
        self,
        storage: FileStorage,
        file_id: str,
        *,
        limit: int | None,
        flush_size: int = DEFAULT_FLUSH_SIZE,
    ) -> None:
        self.storage = storage
        self.file_id = file_id
        self._hasher = hashlib.sha256()
        self._temp: TempFile | None = storage.new_temp()
        self._writer = ChunkWriter(
            self._temp.fd, limit=limit, hashers=(self._hasher,), flush_size=flush_size
        )
        self.committed: FileMeta | None = None

    @property
    def received(self) -> int:
        return self._writer.received

    async def __aenter__(self) -> UploadSink:
        try:
            await self._writer.__aenter__()
        except BaseException:
            self.discard()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._writer.__aexit__(exc_type, exc, tb)
        finally:
            self.discard()

    async def write(self, chunk: bytes) -> None:
        """Accept a chunk; :class:`UploadTooLarge` past the limit (then discard)."""
        await self._writer.write(chunk)

    async def finish(self, expected_sha256: str | None = None) -> tuple[int, str]:
        """Flush; return ``(size, sha256 hex)``. :class:`ChecksumMismatch` if it differs."""
        await self._writer.flush()
        digest = self._hasher.hexdigest()
        if expected_sha256 is not None and expected_sha256 != digest:
            raise ChecksumMismatch(expected_sha256, digest)
        return self._writer.written, digest

    async def commit(
        self,
        *,
        name: str | None,
        content_type: str,
        expected_sha256: str | None = None,
    ) -> FileMeta:
        """Finish, then move the file into place (in a worker thread) and return its metadata."""
        size, digest = await self.finish(expected_sha256)
        temp = self._temp
        if temp is None:
            raise RuntimeError("the upload was already committed or discarded")
        meta = FileMeta(
            id=self.file_id,
            size=size,
            sha256=digest,
            name=name,
            content_type=content_type,
            created=time.time(),
        )
        await anyio.to_thread.run_sync(self._commit, temp, meta)
        self._temp = None
        self.committed = meta
        return meta

    def _commit(self, temp: TempFile, meta: FileMeta) -> None:
        self.storage.commit(temp.path, meta, fd=temp.fd)
        temp.close()

    def discard(self) -> None:
        """Remove the temporary file unless committed. Idempotent, never raises for a missing
        file; synchronous (an unlink). Called when the block is left."""
        if self._temp is not None:
            temp, self._temp = self._temp, None
            temp.discard()
