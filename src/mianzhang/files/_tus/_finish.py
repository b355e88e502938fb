"""Finishing a tus upload whose offset reached its length: hash, verify, store.

Guarantees of :func:`finish_upload`: the stored file's sha-256 is that of every byte of the
upload (the running hash when this process saw them all, else re-read from the disk); a file
that does not match the digest announced at creation is never stored, and the upload is then
removed; a matching one is moved atomically into the file storage under the upload's id
(servable at once), its record marked complete, and the progress stream closed either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from ..._errors import ChecksumMismatch
from .._progress import ProgressPublisher
from .._stats import FilesStats
from .._storage import FileMeta, FileStorage
from ._store import TusStore, TusUpload

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = ["finish_upload"]


async def finish_upload(
    upload: TusUpload,
    whole: _Hash | None,
    *,
    store: TusStore,
    storage: FileStorage,
    stats: FilesStats | None,
    progress: ProgressPublisher,
    file_url: Callable[[str], str],
) -> ChecksumMismatch | None:
    """Store the finished ``upload`` (``whole``: its running sha-256, if known); the
    mismatch if its digest is not the announced one (the upload is then removed)."""
    if whole is not None:
        digest = whole.hexdigest()
    else:
        digest = await anyio.to_thread.run_sync(store.hash_part, upload.id)
    if upload.expected_sha256 is not None and upload.expected_sha256 != digest:
        await anyio.to_thread.run_sync(store.remove, upload.id)
        mismatch = ChecksumMismatch(upload.expected_sha256, digest)
        if stats is not None:
            stats.uploads_failed += 1
        await progress.fail(str(mismatch), upload.length)
        return mismatch
    meta = await _store_file(upload, digest, store, storage)
    if stats is not None:
        stats.uploads_completed += 1
    await progress.complete(size=meta.size, sha256=digest, url=file_url(upload.id))
    return None


async def _store_file(
    upload: TusUpload, digest: str, store: TusStore, storage: FileStorage
) -> FileMeta:
    """Move the part file into the storage under the upload's id; mark the record complete."""
    meta = FileMeta(
        id=upload.id,
        size=upload.length,
        sha256=digest,
        name=upload.name,
        content_type=upload.content_type,
        created=time.time(),
    )
    part_path = store.part_path(upload.id)
    await anyio.to_thread.run_sync(lambda: storage.commit(part_path, meta))
    upload.complete = True
    upload.sha256 = digest
    await anyio.to_thread.run_sync(store.save, upload)
    return meta
