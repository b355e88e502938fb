"""One object holding the file feature's state: storage, tus uploads, settings, event log.

The HTTP routes (``mianzhang.server.routes.files``) only map URLs to these methods. Every
method answers a JSON error (4xx, or 503 while draining) before any body is sent when the
request is refused.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import TypeVar

import anyio.to_thread
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from .._errors import FileNotFound, FilesError, LeaseLost
from ..log import EventLog
from ._digest import repr_digest
from ._download import FileDownload
from ._http import error_response, files_error_response, lease_lost_response
from ._ids import is_file_id
from ._multipart import receive_multipart
from ._progress import progress_stream
from ._settings import FilesSettings
from ._stats import FilesStats
from ._storage import FileMeta, FileStorage
from ._tus import TusUploads
from ._upload import limited_body, receive_raw

__all__ = ["FilesService", "file_json"]

_STALE_TEMP_AGE = 24 * 3600.0


def file_json(meta: FileMeta, url: str) -> dict[str, object]:
    """The public description of a stored file."""
    return {
        "id": meta.id,
        "name": meta.name,
        "size": meta.size,
        "sha256": meta.sha256,
        "content_type": meta.content_type,
        "created": meta.created,
        "url": url,
        "progress_stream": progress_stream(meta.id),
    }


T = TypeVar("T")


class FilesService:
    """Stored files and uploads under ``settings.directory`` (created if missing).

    Lifecycle: create it once at application start (the constructor removes temporaries that
    a process which died mid-upload left in ``.tmp`` more than a day ago: blocking, once);
    call :meth:`drain` when the instance starts shutting down (SIGTERM) and :meth:`aclose`
    at the end of the lifespan. It owns no background task; ``stats`` counts transfers.

    Each upload request holds the producer lease of its progress stream for ``lease_ttl``
    seconds, renewed while it runs (``_progress``: the server passes
    ``producer_lease_ttl``; ``None``: no lease).
    """

    def __init__(
        self,
        settings: FilesSettings,
        log: EventLog | None = None,
        *,
        lease_ttl: float | None = 5.0,
    ) -> None:
        self.settings = settings
        self.log = log
        self.lease_ttl = lease_ttl
        self.stats = FilesStats()
        self.storage = FileStorage(settings.directory, fsync=settings.fsync)
        self.storage.purge_temps(_STALE_TEMP_AGE)
        self.tus = TusUploads(self.storage, settings, log, self.stats, lease_ttl=lease_ttl)
        self.draining = False
        self._closed = False

    # -- lifecycle --------------------------------------------------------------------------------
    async def drain(self) -> int:
        """Start shutting down: new uploads (raw, multipart, tus creation and ``PATCH``) are
        refused with 503 + ``Retry-After`` + ``Connection: close``; running tus ``PATCH``es
        save what they received and answer with their offset, so tus clients resume on
        another instance. Raw and multipart uploads already running, and downloads, go on
        (they end within the server's graceful timeout or are cut by it). Idempotent;
        returns how many tus ``PATCH``es were stopped."""
        self.draining = True
        self.tus.draining = True
        return await self.tus.interrupt_running()

    async def aclose(self) -> None:
        """End of the lifespan: :meth:`drain` if not done yet. Idempotent. (Requests still
        running are the server's to cancel; each removes its own temporaries.)"""
        if self._closed:
            return
        self._closed = True
        await self.drain()

    def _refuse_draining(self) -> Response:
        return error_response(
            503,
            "this instance is shutting down: retry the upload",
            kind="draining",
            headers={"Retry-After": "1", "Connection": "close"},
        )

    # -- downloads --------------------------------------------------------------------------------
    def download(self, file_id: str) -> FileDownload:
        """The ASGI response serving ``file_id`` (GET/HEAD; 404 JSON if it does not exist)."""
        return FileDownload(
            self.storage,
            file_id,
            chunk_size=self.settings.chunk_size,
            max_ranges=self.settings.max_ranges,
            max_range_specs=self.settings.max_range_specs,
            stats=self.stats,
        )

    # -- uploads ----------------------------------------------------------------------------------
    def _body(self, request: Request) -> AsyncGenerator[bytes, None]:
        return limited_body(
            request.stream(),
            window=self.settings.upload_idle_timeout,
            min_rate=self.settings.upload_min_rate,
            stats=self.stats,
        )

    async def _receive(
        self, request: Request, receive: Callable[[AsyncGenerator[bytes, None]], Awaitable[T]]
    ) -> T | Response:
        """What ``receive`` makes of the request's body (rate-limited, closed after), counted
        in ``stats`` as an active upload meanwhile. A failure is the answer instead, counted
        as failed: a :class:`FilesError` as its JSON error, a disconnect as 400 (nobody
        reads it; the temporary file is already gone). Nothing is kept when it fails."""
        self.stats.active_uploads += 1
        try:
            async with aclosing(self._body(request)) as body:
                return await receive(body)
        except FilesError as exc:
            self.stats.uploads_failed += 1
            return files_error_response(exc)
        except ClientDisconnect:
            self.stats.uploads_failed += 1
            return Response(status_code=400, headers={"Connection": "close"})
        except LeaseLost:
            self.stats.uploads_failed += 1
            return lease_lost_response()
        finally:
            self.stats.active_uploads -= 1

    async def upload(self, request: Request, file_url: Callable[[str], str]) -> Response:
        """``POST``: every file of a multipart/form-data body, or else the raw body (see
        :meth:`upload_raw`).

        Multipart: 201 with ``{"files": [...]}``, all files or none (a failure removes those
        of this request). Nothing is kept when it fails.
        """
        content_type = request.headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            return await self.upload_raw(request, file_url)
        if self.draining:
            return self._refuse_draining()
        metas = await self._receive(
            request,
            lambda body: receive_multipart(
                body, request.headers, storage=self.storage, settings=self.settings
            ),
        )
        if isinstance(metas, Response):
            return metas
        self.stats.uploads_completed += len(metas)
        return JSONResponse(
            {"files": [file_json(meta, file_url(meta.id)) for meta in metas]}, status_code=201
        )

    async def upload_raw(
        self, request: Request, file_url: Callable[[str], str], name: str | None = None
    ) -> Response:
        """Store the raw request body as a new file (``PUT``, or a non-multipart ``POST``).

        The client's file name (metadata only) is ``name`` (the last segment of a ``PUT``
        URL), else ``?name=``, else the request's ``Content-Disposition``. 201 with the
        file's JSON, ``Location`` (its download URL, under a generated id) and
        ``Repr-Digest``. A digest announced with
        ``Repr-Digest``/``Content-Digest``/``X-Checksum-Sha256`` is verified (400 if it
        differs). Nothing is kept when it fails. Progress goes to ``upload:{id}``.
        """
        if self.draining:
            return self._refuse_draining()
        meta = await self._receive(
            request,
            lambda body: receive_raw(
                body,
                request.headers,
                storage=self.storage,
                settings=self.settings,
                log=self.log,
                name=name or request.query_params.get("name"),
                url_for=file_url,
                lease_ttl=self.lease_ttl,
            ),
        )
        if isinstance(meta, Response):
            return meta
        self.stats.uploads_completed += 1
        url = file_url(meta.id)
        return JSONResponse(
            file_json(meta, url),
            status_code=201,
            headers={"Location": url, "Repr-Digest": repr_digest(meta.sha256)},
        )

    # -- stored files -----------------------------------------------------------------------------
    async def info(self, file_id: str) -> FileMeta:
        """The metadata of a stored file; :class:`FileNotFound` if there is none."""
        if not await anyio.to_thread.run_sync(self.storage.exists, file_id):
            raise FileNotFound(file_id)
        meta = await anyio.to_thread.run_sync(self.storage.read_meta, file_id)
        if meta is None:
            raise FileNotFound(file_id)
        return meta

    async def read(
        self, file_id: str, *, chunk_size: int | None = None
    ) -> AsyncGenerator[bytes, None]:
        """The bytes of stored file ``file_id``, chunk by chunk (``chunk_size``, default the
        download chunk size), read in a worker thread: how a job handed a file reads it.

        :class:`FileNotFound` on the first iteration if it does not exist. The file is opened
        once; its descriptor is closed when the generator ends or is closed (use
        ``contextlib.aclosing``). A stored file never changes, so the bytes are those hashed
        at upload.
        """
        size = chunk_size or self.settings.chunk_size
        opened = await anyio.to_thread.run_sync(self.storage.open_read, file_id)
        try:
            offset = 0
            while offset < opened.size:
                data = await anyio.to_thread.run_sync(
                    os.pread, opened.fd, min(size, opened.size - offset), offset
                )
                if not data:
                    raise OSError(f"file {file_id} shrank while being read")
                offset += len(data)
                yield data
        finally:
            opened.close()

    async def delete(self, file_id: str) -> bool:
        """Remove a stored file; whether it existed."""
        if not is_file_id(file_id):
            return False
        return await anyio.to_thread.run_sync(self.storage.delete, file_id)

    async def recent(self, limit: int = 100) -> list[FileMeta]:
        """Up to ``limit`` stored files, newest first (one directory scan)."""
        return await anyio.to_thread.run_sync(self._list, limit)

    def _list(self, limit: int) -> list[FileMeta]:
        found: list[tuple[float, str]] = []
        with os.scandir(self.storage.root) as entries:
            for entry in entries:
                if is_file_id(entry.name) and entry.is_file(follow_symlinks=False):
                    try:
                        found.append((entry.stat(follow_symlinks=False).st_mtime, entry.name))
                    except FileNotFoundError:
                        continue
        found.sort(reverse=True)
        metas: list[FileMeta] = []
        for _, file_id in found[:limit]:
            meta = self.storage.read_meta(file_id)
            if meta is not None:
                metas.append(meta)
        return metas

    @staticmethod
    def not_found(exc: FileNotFound) -> Response:
        return files_error_response(exc)
