"""The tus HTTP handlers: one method per request kind, each answering a complete Response.

Every answer carries ``Tus-Resumable: 1.0.0``; every error (4xx/5xx) has a JSON body
``{"error": {"type", "message"}}`` like the project's other errors (a ``HEAD`` answer carries
the same headers, its body is dropped by the server). The store, the claims and the receiving
of a body are in sibling modules; this one decides statuses and headers.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from ..._errors import (
    ChecksumMismatch,
    FileNotFound,
    FilesError,
    InvalidUpload,
    LeaseLost,
    UploadConflict,
    UploadTooLarge,
)
from ...log import EventLog
from .._conditional import format_http_date
from .._digest import expected_sha256
from .._http import error_response, files_error_response, lease_lost_response
from .._ids import new_file_id
from .._names import DEFAULT_CONTENT_TYPE, clean_content_type, clean_filename
from .._progress import ProgressPublisher
from .._settings import FilesSettings
from .._stats import FilesStats
from .._storage import FileStorage
from .._upload import content_length
from ._claims import Claim, Claims
from ._finish import finish_upload
from ._headers import (
    CHECKSUMS,
    OFFSET_OCTET_STREAM,
    TUS_EXTENSIONS,
    TUS_VERSION,
    parse_checksum,
    parse_digits,
    parse_upload_metadata,
)
from ._receive import PatchOutcome, RunningHashes, receive_patch
from ._store import TusStore, TusUpload

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = ["TusUploads"]

T = TypeVar("T")
FileUrl = Callable[[str], str]
_PURGE_EVERY = 60.0


class TusUploads:
    """The tus endpoint's state and handlers. One instance per application (it holds the
    per-upload claims and running hashes of this process). A ``PATCH`` holds the (non-final)
    producer lease of the upload's progress stream for ``lease_ttl`` seconds while it runs
    (``_progress``)."""

    def __init__(
        self,
        storage: FileStorage,
        settings: FilesSettings,
        log: EventLog | None = None,
        stats: FilesStats | None = None,
        *,
        lease_ttl: float | None = None,
    ) -> None:
        self.lease_ttl = lease_ttl
        self.storage = storage
        self.settings = settings
        self.log = log
        self.stats = stats
        self.draining = False
        self.store = TusStore(storage, settings)
        self._claims = Claims()
        self._hashes = RunningHashes()
        self._next_purge = 0.0

    def purge_expired(self, now: float | None = None, active: frozenset[str] = frozenset()) -> int:
        """Remove uploads (incomplete ones, and records of completed ones) older than
        ``tus_expire_after``, except ``active`` ones. Returns how many were removed."""
        return self.store.purge_expired(now, active)

    async def interrupt_running(self) -> int:
        """Stop every running ``PATCH`` of this process: each saves what it received and
        answers with its offset (``Connection: close`` while draining), so its client resumes,
        on another instance. Returns how many were stopped; waits for them (each is bounded by a
        shielded flush of at most one write batch)."""
        return await self._claims.interrupt_all()

    # -- answers --------------------------------------------------------------------------------
    def _headers(self, **extra: str) -> dict[str, str]:
        return {"Tus-Resumable": TUS_VERSION, **extra}

    def _version_error(self, request: Request) -> Response | None:
        if request.headers.get("tus-resumable") == TUS_VERSION:
            return None
        return error_response(
            412,
            f"unsupported or missing Tus-Resumable (this server speaks {TUS_VERSION})",
            headers=self._headers(**{"Tus-Version": TUS_VERSION}),
        )

    def _error(self, exc: FilesError, **extra: str) -> Response:
        if isinstance(exc, ChecksumMismatch):
            return error_response(460, str(exc), headers=self._headers(**extra))
        return files_error_response(exc, headers=self._headers(**extra))

    def _draining(self) -> Response:
        return error_response(
            503,
            "this instance is shutting down: retry (the upload continues on another instance)",
            kind="draining",
            headers=self._headers(**{"Retry-After": "1", "Connection": "close"}),
        )

    def _publisher(self, upload: TusUpload) -> ProgressPublisher:
        return ProgressPublisher(
            self.log,
            upload.id,
            upload.length,
            interval=self.settings.progress_interval,
            step=self.settings.progress_step,
            ttl_after_close=self.settings.progress_ttl,
            lease_ttl=self.lease_ttl,
        )

    async def _exclusively(
        self, upload_id: str, action: Callable[[Claim], Awaitable[T]], **not_found: str
    ) -> T | Response:
        """``action`` run while holding ``upload_id`` (see ``_claims``); 404 (JSON, with the
        ``not_found`` headers) if there is no such upload, 423 if its holder did not let go."""
        try:
            async with self._claims.hold(upload_id) as claim:
                return await action(claim)
        except FileNotFound:
            message = f"upload not found: {upload_id!r}"
            return error_response(404, message, headers=self._headers(**not_found))
        except TimeoutError:
            return error_response(423, "the upload is busy", headers=self._headers())

    async def _load(self, upload_id: str) -> tuple[TusUpload, int]:
        """The upload's record and offset; :class:`FileNotFound` if there is none."""
        upload = await anyio.to_thread.run_sync(self.store.load, upload_id)
        return upload, await anyio.to_thread.run_sync(self.store.offset, upload)

    # -- OPTIONS, POST ----------------------------------------------------------------------
    def options(self) -> Response:
        """``OPTIONS``: 204 with the server's capabilities."""
        return Response(
            status_code=204,
            headers=self._headers(
                **{
                    "Tus-Version": TUS_VERSION,
                    "Tus-Extension": TUS_EXTENSIONS,
                    "Tus-Max-Size": str(self.settings.tus_limit),
                    "Tus-Checksum-Algorithm": ",".join(CHECKSUMS),
                }
            ),
        )

    async def create(self, request: Request, location: FileUrl, file_url: FileUrl) -> Response:
        """``POST``: create an upload; 201 with its ``Location`` (an empty upload is stored
        at once). Refused before anything is written: 412, 503 (draining), 400, 413."""
        if (version_error := self._version_error(request)) is not None:
            return version_error
        if self.draining:
            return self._draining()
        try:
            upload = self._new_upload(request)
        except FilesError as exc:
            return self._error(exc)
        await self._maybe_purge()
        await anyio.to_thread.run_sync(self.store.create, upload)
        progress = self._publisher(upload)
        await progress.start()
        if upload.length == 0:
            async with self._claims.hold(upload.id):
                failure = await self._complete(upload, None, progress, file_url)
            if failure is not None:
                return failure
        expires = format_http_date(upload.created + self.settings.tus_expire_after)
        headers = self._headers(Location=location(upload.id), **{"Upload-Expires": expires})
        return Response(status_code=201, headers=headers)

    def _new_upload(self, request: Request) -> TusUpload:
        """The record a creation request asks for; :class:`FilesError` if it is invalid."""
        if request.headers.get("upload-defer-length") is not None:
            raise InvalidUpload("Upload-Defer-Length is not supported")
        length = parse_digits(request.headers.get("upload-length"))
        if length is None:
            raise InvalidUpload("Upload-Length (a non-negative integer) is required")
        if length > self.settings.tus_limit:
            raise UploadTooLarge(self.settings.tus_limit)
        metadata_header = request.headers.get("upload-metadata") or ""
        metadata = parse_upload_metadata(metadata_header, self.settings.max_metadata_size)
        expected = expected_sha256(
            repr_digest=request.headers.get("repr-digest"),
            x_checksum_sha256=request.headers.get("x-checksum-sha256"),
        )
        return TusUpload(
            id=new_file_id(),
            length=length,
            metadata=metadata_header,
            name=clean_filename(metadata.get("filename") or metadata.get("name")),
            content_type=clean_content_type(
                metadata.get("filetype") or metadata.get("type") or DEFAULT_CONTENT_TYPE
            ),
            created=time.time(),
            expected_sha256=expected,
        )

    async def _maybe_purge(self) -> None:
        """Purge expired uploads, at most once every :data:`_PURGE_EVERY` seconds."""
        now = time.monotonic()
        if now < self._next_purge:
            return
        self._next_purge = now + _PURGE_EVERY
        active = self._claims.held()
        await anyio.to_thread.run_sync(lambda: self.store.purge_expired(active=active))

    # -- HEAD, DELETE -----------------------------------------------------------------------
    async def head(self, request: Request, upload_id: str) -> Response:
        """``HEAD``: the upload's offset (after any running PATCH has saved its bytes)."""
        if (version_error := self._version_error(request)) is not None:
            return version_error
        no_store = {"Cache-Control": "no-store"}
        found = await self._exclusively(upload_id, lambda _: self._load(upload_id), **no_store)
        if isinstance(found, Response):
            return found
        upload, offset = found
        headers = self._headers(
            **{"Upload-Offset": str(offset), "Upload-Length": str(upload.length), **no_store}
        )
        if upload.metadata:
            headers["Upload-Metadata"] = upload.metadata
        return Response(status_code=200, headers=headers)

    async def delete(self, request: Request, upload_id: str) -> Response:
        """``DELETE`` (termination): remove the upload (a completed file stays stored)."""
        if (version_error := self._version_error(request)) is not None:
            return version_error

        async def remove(_: Claim) -> TusUpload:
            upload = await anyio.to_thread.run_sync(self.store.load, upload_id)
            await anyio.to_thread.run_sync(self.store.remove, upload_id)
            self._hashes.forget(upload_id)
            return upload

        removed = await self._exclusively(upload_id, remove)
        if isinstance(removed, Response):
            return removed
        if not removed.complete:
            await self._publisher(removed).fail("terminated", 0)
        return Response(status_code=204, headers=self._headers())

    # -- PATCH ------------------------------------------------------------------------------
    async def patch(self, request: Request, upload_id: str, file_url: FileUrl) -> Response:
        """``PATCH``: append the body at ``Upload-Offset``; 204 with the new offset. Refused
        before reading the body: 412, 503 (draining), 415, 400, 404, 409 (offset), 413."""
        if (refused := self._refuse_patch(request)) is not None:
            return refused
        try:
            given, checksum, declared = _patch_headers(request)
        except FilesError as exc:
            return self._error(exc)

        async def append(claim: Claim) -> Response:
            upload, offset = await self._load(upload_id)
            if upload.complete or given != offset:
                return self._error(UploadConflict(offset, given), **{"Upload-Offset": str(offset)})
            if declared is not None and offset + declared > upload.length:
                return self._error(UploadTooLarge(upload.length))
            return await self._receive(request, upload, offset, checksum, claim, file_url)

        return await self._exclusively(upload_id, append)

    def _refuse_patch(self, request: Request) -> Response | None:
        """The answer to a PATCH refused by its version, by draining or by its media type."""
        if (version_error := self._version_error(request)) is not None:
            return version_error
        if self.draining:
            return self._draining()
        media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type != OFFSET_OCTET_STREAM:
            return error_response(
                415, f"PATCH needs Content-Type: {OFFSET_OCTET_STREAM}", headers=self._headers()
            )
        return None

    async def _receive(
        self,
        request: Request,
        upload: TusUpload,
        offset: int,
        checksum: tuple[str, bytes] | None,
        claim: Claim,
        file_url: FileUrl,
    ) -> Response:
        """Take the body (counted as an active upload), then answer with the new offset; the
        progress stream's lease is held meanwhile (503 if it is lost: the client resumes)."""
        progress = self._publisher(upload)
        if self.stats is not None:
            self.stats.active_uploads += 1
        try:
            async with progress.producing(resumable=True, received=offset):
                outcome = await receive_patch(
                    request.stream(),
                    upload,
                    offset,
                    checksum,
                    scope=claim.scope,
                    store=self.store,
                    hashes=self._hashes,
                    progress=progress,
                    settings=self.settings,
                    stats=self.stats,
                )
                return await self._patched(upload, outcome, progress, file_url)
        except LeaseLost:
            return lease_lost_response(headers=self._headers())
        finally:
            if self.stats is not None:
                self.stats.active_uploads -= 1

    async def _patched(
        self,
        upload: TusUpload,
        outcome: PatchOutcome,
        progress: ProgressPublisher,
        file_url: FileUrl,
    ) -> Response:
        """The answer to a PATCH that took its body: the failure, the stored file, or 204."""
        headers = {"Upload-Offset": str(outcome.offset)}
        if self.draining:  # this instance is going away: the client continues elsewhere
            headers["Connection"] = "close"
        if outcome.failure is not None:
            await progress.pause(outcome.offset)
            return self._error(outcome.failure, **headers)
        if outcome.offset == upload.length:
            self._hashes.forget(upload.id)
            failure = await self._complete(upload, outcome.whole, progress, file_url)
            if failure is not None:
                return failure
        else:
            await progress.pause(outcome.offset)
            expires = time.time() + self.settings.tus_expire_after
            headers["Upload-Expires"] = format_http_date(expires)
        return Response(status_code=204, headers=self._headers(**headers))

    async def _complete(
        self, upload: TusUpload, whole: _Hash | None, progress: ProgressPublisher, file_url: FileUrl
    ) -> Response | None:
        """Store a finished upload (see ``_finish``); the 460 answer if its digest is wrong."""
        mismatch = await finish_upload(
            upload,
            whole,
            store=self.store,
            storage=self.storage,
            stats=self.stats,
            progress=progress,
            file_url=file_url,
        )
        return None if mismatch is None else self._error(mismatch)


def _patch_headers(request: Request) -> tuple[int, tuple[str, bytes] | None, int | None]:
    """``Upload-Offset``, ``Upload-Checksum`` and ``Content-Length`` of a PATCH;
    :class:`InvalidUpload` if one is malformed (the offset is required)."""
    given = parse_digits(request.headers.get("upload-offset"))
    if given is None:
        raise InvalidUpload("Upload-Offset (a non-negative integer) is required")
    return (
        given,
        parse_checksum(request.headers.get("upload-checksum")),
        content_length(request.headers),
    )
