"""Resumable uploads with the tus 1.0.0 protocol (core + creation, termination, expiration,
checksum), so existing tus clients (tus-js-client, tuspy, Uppy) resume interrupted uploads.

Protocol summary (https://tus.io/protocols/resumable-upload):

* ``OPTIONS``: 204 with ``Tus-Version``, ``Tus-Extension``, ``Tus-Max-Size``,
  ``Tus-Checksum-Algorithm``.
* ``POST`` (creation) with ``Upload-Length`` (and optional ``Upload-Metadata``, whose
  ``filename``/``filetype`` become the file's name and type, and optional ``Repr-Digest`` for
  the whole file): 201 with ``Location`` and ``Upload-Expires``. ``Upload-Defer-Length`` is
  not supported (400).
* ``HEAD``: ``Upload-Offset``, ``Upload-Length``, ``Upload-Metadata``, ``Cache-Control:
  no-store``.
* ``PATCH`` with ``Content-Type: application/offset+octet-stream`` and ``Upload-Offset``
  equal to the current offset (409 otherwise; 415 for another type): the bytes are appended.
  With ``Upload-Checksum: ALGO BASE64`` the request's bytes are kept only if they match
  (460 otherwise, offset unchanged).
* ``DELETE`` (termination): 204; the partial upload is removed.
* Every response carries ``Tus-Resumable: 1.0.0``; a request (other than OPTIONS) without it,
  or with another version, gets 412 with ``Tus-Version``.

Guarantees:

* Bytes of a PATCH that breaks off (client gone, connection cut) are kept up to the last byte
  received (without a checksum header; with one, unverifiable bytes are dropped), so the
  client's next ``HEAD`` sees how far it got and resumes from there.
* One request at a time per upload: a ``HEAD``, ``PATCH`` or ``DELETE`` arriving while a
  PATCH is still running (its client vanished without the server noticing yet) cancels that
  PATCH, waits until it has saved what it received, and only then answers: the offset it
  reports is final. (This lock is per process: run tus behind one worker or sticky routing.)
* When the offset reaches ``Upload-Length`` the file is hashed (sha-256, incrementally when
  the upload arrived in one process without checksum drops, else by re-reading it), checked
  against the announced digest, and moved atomically into the file storage under the upload's
  id: ``GET /v1/files/{id}`` serves it. A whole-file digest mismatch removes the upload (460).
* Incomplete uploads not written to for ``tus_expire_after`` seconds are removed (checked at
  most once a minute, on creation); ``Upload-Expires`` tells clients when.
* Progress is published to the event-log stream ``upload:{id}`` (see ``_progress``).
* Draining (SIGTERM): :meth:`TusUploads.interrupt_running` stops every running ``PATCH``,
  which saves its bytes and answers its offset with ``Connection: close``; while
  ``draining``, creation and ``PATCH`` get 503 with ``Retry-After``, so clients resume on
  another instance sharing the storage directory.
* A body slower than ``upload_min_rate`` over ``upload_idle_timeout`` is cut with 408
  (keeping what arrived), as for every upload.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from .._errors import (
    ChecksumMismatch,
    FileNotFound,
    FilesError,
    InvalidUpload,
    UploadConflict,
    UploadStalled,
    UploadTooLarge,
)
from ..log import EventLog
from ._conditional import format_http_date
from ._digest import expected_sha256
from ._http import error_response, files_error_response
from ._ids import is_file_id, new_file_id
from ._names import DEFAULT_CONTENT_TYPE, clean_content_type, clean_filename
from ._progress import ProgressPublisher
from ._settings import FilesSettings
from ._sink import ChunkWriter
from ._stats import FilesStats
from ._storage import FileMeta, FileStorage
from ._upload import content_length, limited_body

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = ["TUS_VERSION", "TusUpload", "TusUploads", "parse_upload_metadata"]

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination,expiration,checksum"
OFFSET_OCTET_STREAM = "application/offset+octet-stream"
_CHECKSUMS: dict[str, Callable[[], _Hash]] = {
    "sha1": lambda: hashlib.sha1(usedforsecurity=False),
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
    "md5": lambda: hashlib.md5(usedforsecurity=False),
}
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_PURGE_EVERY = 60.0
_CLAIM_WAIT = 10.0
_MAX_METADATA_KEYS = 32


@dataclass
class TusUpload:
    """A tus upload's record (``.tus/<id>.json``); its bytes are in ``.tus/<id>.part``."""

    id: str
    length: int
    metadata: str
    name: str | None
    content_type: str
    created: float
    expected_sha256: str | None = None
    complete: bool = False
    sha256: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TusUpload:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


def parse_upload_metadata(value: str | None, max_size: int) -> dict[str, str | None]:
    """``Upload-Metadata`` (``key base64,key base64,key``) -> decoded values (UTF-8, invalid
    sequences replaced). :class:`InvalidUpload` if malformed, duplicated or too large."""
    if value is None or not value.strip():
        return {}
    if len(value) > max_size:
        raise InvalidUpload(f"Upload-Metadata exceeds {max_size} characters")
    result: dict[str, str | None] = {}
    for pair in value.split(","):
        pair = pair.strip(" \t")
        if not pair:
            continue
        key, _, encoded = pair.partition(" ")
        encoded = encoded.strip(" \t")
        if not key or not key.isascii() or not key.isprintable() or " " in encoded:
            raise InvalidUpload("malformed Upload-Metadata")
        if key in result:
            raise InvalidUpload(f"duplicate Upload-Metadata key {key!r}")
        if len(result) >= _MAX_METADATA_KEYS:
            raise InvalidUpload(f"more than {_MAX_METADATA_KEYS} Upload-Metadata keys")
        if not encoded:
            result[key] = None
            continue
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidUpload(f"Upload-Metadata value of {key!r} is not base64") from exc
        result[key] = raw.decode("utf-8", errors="replace")
    return result


def _parse_checksum(value: str | None) -> tuple[str, bytes] | None:
    if value is None:
        return None
    algorithm, _, encoded = value.strip().partition(" ")
    if algorithm not in _CHECKSUMS:
        raise InvalidUpload(f"unsupported Upload-Checksum algorithm {algorithm!r}")
    try:
        return algorithm, base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidUpload("Upload-Checksum is not base64") from exc


def _digits(value: str | None) -> int | None:
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 19:
        return None
    return int(value)


@dataclass
class _Claim:
    scope: anyio.CancelScope
    released: anyio.Event


class TusUploads:
    """The tus endpoint's state and handlers. One instance per application (it holds the
    per-upload claims and running hashes of this process)."""

    def __init__(
        self,
        storage: FileStorage,
        settings: FilesSettings,
        log: EventLog | None = None,
        stats: FilesStats | None = None,
    ) -> None:
        self.storage = storage
        self.settings = settings
        self.log = log
        self.stats = stats
        self.draining = False
        self._active: dict[str, _Claim] = {}
        self._hashes: dict[str, tuple[int, _Hash]] = {}
        self._next_purge = 0.0

    # -- records (blocking; run in a worker thread) -------------------------------------------
    def _info_path(self, upload_id: str) -> Path:
        if not is_file_id(upload_id):
            raise FileNotFound(str(upload_id))
        return self.storage.tus_dir / f"{upload_id}.json"

    def _part_path(self, upload_id: str) -> Path:
        return self._info_path(upload_id).with_suffix(".part")

    def _load(self, upload_id: str) -> TusUpload:
        path = self._info_path(upload_id)
        try:
            fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
            with os.fdopen(fd, "rb") as handle:
                return TusUpload.from_json(json.loads(handle.read(1 << 20)))
        except (OSError, ValueError, TypeError) as exc:
            raise FileNotFound(upload_id) from exc

    def _save(self, upload: TusUpload) -> None:
        path = self._info_path(upload.id)
        temp = self.storage.new_temp(self.storage.tus_dir)
        try:
            payload = json.dumps(asdict(upload), separators=(",", ":")).encode()
            view = memoryview(payload)
            while view:
                view = view[os.write(temp.fd, view) :]
            temp.close()
            os.replace(temp.path, path)
        finally:
            temp.discard()

    def _offset(self, upload: TusUpload) -> int:
        if upload.complete:
            return upload.length
        try:
            return os.lstat(self._part_path(upload.id)).st_size
        except FileNotFoundError as exc:
            raise FileNotFound(upload.id) from exc

    def _expires(self, upload: TusUpload) -> float:
        try:
            touched = os.lstat(self._part_path(upload.id)).st_mtime
        except FileNotFoundError:
            touched = upload.created
        return touched + self.settings.tus_expire_after

    def _create_files(self, upload: TusUpload) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC
        os.close(os.open(self._part_path(upload.id), flags, 0o600))
        try:
            self._save(upload)
        except BaseException:
            self._part_path(upload.id).unlink(missing_ok=True)
            raise

    def _remove(self, upload_id: str) -> None:
        self._part_path(upload_id).unlink(missing_ok=True)
        self._info_path(upload_id).unlink(missing_ok=True)

    def _hash_file(self, path: Path) -> str:
        hasher = hashlib.sha256()
        with open(path, "rb", buffering=0) as handle:
            while chunk := handle.read(1 << 20):
                hasher.update(chunk)
        return hasher.hexdigest()

    def purge_expired(self, now: float | None = None, active: frozenset[str] = frozenset()) -> int:
        """Remove uploads (incomplete ones, and records of completed ones) older than
        ``tus_expire_after``, except ``active`` ones. Returns how many were removed."""
        now = time.time() if now is None else now
        removed = 0
        for path in self.storage.tus_dir.glob("*.json"):
            upload_id = path.stem
            if not is_file_id(upload_id) or upload_id in active:
                continue
            try:
                upload = self._load(upload_id)
            except FileNotFound:
                continue
            if upload.complete:
                expired = upload.created + self.settings.tus_expire_after < now
            else:
                expired = self._expires(upload) < now
            if expired:
                if upload.complete:
                    path.unlink(missing_ok=True)
                else:
                    self._remove(upload_id)
                removed += 1
        return removed

    # -- claims ---------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _claim(self, upload_id: str) -> AsyncIterator[_Claim]:
        """Hold ``upload_id`` exclusively, cancelling (and awaiting) a running holder first."""
        while (current := self._active.get(upload_id)) is not None:
            current.scope.cancel()
            with anyio.fail_after(_CLAIM_WAIT):
                await current.released.wait()
        claim = _Claim(anyio.CancelScope(), anyio.Event())
        self._active[upload_id] = claim
        try:
            yield claim
        finally:
            if self._active.get(upload_id) is claim:
                del self._active[upload_id]
            claim.released.set()

    # -- HTTP ---------------------------------------------------------------------------------
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

    async def interrupt_running(self) -> int:
        """Stop every running ``PATCH`` of this process: each saves what it received and
        answers with its offset (``Connection: close`` while draining), so its client resumes,
        on another instance. Returns how many were stopped; waits for them (each is bounded by a
        shielded flush of at most one write batch)."""
        claims = list(self._active.values())
        for claim in claims:
            claim.scope.cancel()
        for claim in claims:
            await claim.released.wait()
        return len(claims)

    def options(self) -> Response:
        return Response(
            status_code=204,
            headers=self._headers(
                **{
                    "Tus-Version": TUS_VERSION,
                    "Tus-Extension": TUS_EXTENSIONS,
                    "Tus-Max-Size": str(self.settings.tus_limit),
                    "Tus-Checksum-Algorithm": ",".join(_CHECKSUMS),
                }
            ),
        )

    def _publisher(self, upload: TusUpload) -> ProgressPublisher:
        return ProgressPublisher(
            self.log,
            upload.id,
            upload.length,
            interval=self.settings.progress_interval,
            step=self.settings.progress_step,
        )

    async def create(
        self, request: Request, location: Callable[[str], str], file_url: Callable[[str], str]
    ) -> Response:
        """``POST``: create an upload; 201 with its ``Location``."""
        if (version_error := self._version_error(request)) is not None:
            return version_error
        if self.draining:
            return self._draining()
        try:
            if request.headers.get("upload-defer-length") is not None:
                raise InvalidUpload("Upload-Defer-Length is not supported")
            length = _digits(request.headers.get("upload-length"))
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
        except FilesError as exc:
            return self._error(exc)
        upload = TusUpload(
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
        await self._maybe_purge()
        await anyio.to_thread.run_sync(self._create_files, upload)
        progress = self._publisher(upload)
        await progress.start()
        headers = self._headers(
            Location=location(upload.id),
            **{"Upload-Expires": format_http_date(upload.created + self.settings.tus_expire_after)},
        )
        if length == 0:
            async with self._claim(upload.id):
                failure = await self._complete(upload, None, progress, file_url)
            if failure is not None:
                return failure
        return Response(status_code=201, headers=headers)

    async def _maybe_purge(self) -> None:
        now = time.monotonic()
        if now < self._next_purge:
            return
        self._next_purge = now + _PURGE_EVERY
        active = frozenset(self._active)
        await anyio.to_thread.run_sync(lambda: self.purge_expired(active=active))

    async def head(self, request: Request, upload_id: str) -> Response:
        """``HEAD``: the upload's offset (after any running PATCH has saved its bytes)."""
        if (version_error := self._version_error(request)) is not None:
            return version_error
        try:
            async with self._claim(upload_id):
                upload = await anyio.to_thread.run_sync(self._load, upload_id)
                offset = await anyio.to_thread.run_sync(self._offset, upload)
        except FileNotFound:
            return Response(status_code=404, headers=self._headers(**{"Cache-Control": "no-store"}))
        except TimeoutError:
            return error_response(423, "the upload is busy", headers=self._headers())
        headers = self._headers(
            **{
                "Upload-Offset": str(offset),
                "Upload-Length": str(upload.length),
                "Cache-Control": "no-store",
            }
        )
        if upload.metadata:
            headers["Upload-Metadata"] = upload.metadata
        return Response(status_code=200, headers=headers)

    async def delete(self, request: Request, upload_id: str) -> Response:
        """``DELETE`` (termination): remove the upload (a completed file stays stored)."""
        if (version_error := self._version_error(request)) is not None:
            return version_error
        try:
            async with self._claim(upload_id):
                upload = await anyio.to_thread.run_sync(self._load, upload_id)
                await anyio.to_thread.run_sync(self._remove, upload_id)
                self._hashes.pop(upload_id, None)
        except FileNotFound:
            return Response(status_code=404, headers=self._headers())
        except TimeoutError:
            return error_response(423, "the upload is busy", headers=self._headers())
        if not upload.complete:
            await self._publisher(upload).fail("terminated", 0)
        return Response(status_code=204, headers=self._headers())

    async def patch(
        self, request: Request, upload_id: str, file_url: Callable[[str], str]
    ) -> Response:
        """``PATCH``: append the body at ``Upload-Offset``; 204 with the new offset."""
        if (version_error := self._version_error(request)) is not None:
            return version_error
        if self.draining:
            return self._draining()
        media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type != OFFSET_OCTET_STREAM:
            return error_response(
                415, f"PATCH needs Content-Type: {OFFSET_OCTET_STREAM}", headers=self._headers()
            )
        given = _digits(request.headers.get("upload-offset"))
        try:
            if given is None:
                raise InvalidUpload("Upload-Offset (a non-negative integer) is required")
            checksum = _parse_checksum(request.headers.get("upload-checksum"))
            declared = content_length(request.headers)
        except FilesError as exc:
            return self._error(exc)
        try:
            async with self._claim(upload_id) as claim:
                upload = await anyio.to_thread.run_sync(self._load, upload_id)
                offset = await anyio.to_thread.run_sync(self._offset, upload)
                if upload.complete or given != offset:
                    return self._error(
                        UploadConflict(offset, given), **{"Upload-Offset": str(offset)}
                    )
                if declared is not None and offset + declared > upload.length:
                    return self._error(UploadTooLarge(upload.length))
                if self.stats is not None:
                    self.stats.active_uploads += 1
                try:
                    return await self._receive(request, upload, offset, checksum, claim, file_url)
                finally:
                    if self.stats is not None:
                        self.stats.active_uploads -= 1
        except FileNotFound:
            return Response(status_code=404, headers=self._headers())
        except TimeoutError:
            return error_response(423, "the upload is busy", headers=self._headers())

    async def _receive(
        self,
        request: Request,
        upload: TusUpload,
        offset: int,
        checksum: tuple[str, bytes] | None,
        claim: _Claim,
        file_url: Callable[[str], str],
    ) -> Response:
        part_path = self._part_path(upload.id)
        fd = await anyio.to_thread.run_sync(
            os.open, part_path, os.O_WRONLY | _O_NOFOLLOW | _O_CLOEXEC
        )
        running = self._hashes.pop(upload.id, None)
        whole: _Hash | None
        if running is not None and running[0] == offset:
            whole = running[1]
        else:
            whole = hashlib.sha256() if offset == 0 else None
        request_hash = _CHECKSUMS[checksum[0]]() if checksum is not None else None
        writer = ChunkWriter(
            fd,
            offset=offset,
            limit=upload.length,
            hashers=[h for h in (whole, request_hash) if h is not None],
            flush_size=self.settings.write_buffer,
        )
        progress = self._publisher(upload)
        body_complete = False
        failure: FilesError | None = None
        new_offset = offset
        try:
            async with writer:
                try:
                    with claim.scope:
                        try:
                            stream = limited_body(
                                request.stream(),
                                window=self.settings.upload_idle_timeout,
                                min_rate=self.settings.upload_min_rate,
                                stats=self.stats,
                            )
                            async with aclosing(stream) as body:
                                async for chunk in body:
                                    await writer.write(chunk)
                                    await progress.update(writer.received)
                            body_complete = True
                        except ClientDisconnect:
                            pass
                        except (UploadTooLarge, UploadStalled) as exc:
                            failure = exc
                finally:
                    # Keep what was received (the point of tus), even when cancelled.
                    with anyio.CancelScope(shield=True):
                        await writer.flush()
                        new_offset = writer.written
                        if (
                            checksum is not None
                            and request_hash is not None
                            and (not body_complete or request_hash.digest() != checksum[1])
                        ):
                            # unverifiable or wrong: drop this request's bytes
                            await anyio.to_thread.run_sync(os.ftruncate, fd, offset)
                            new_offset = offset
                            whole = None
                            if body_complete:
                                failure = ChecksumMismatch(
                                    checksum[1].hex(), request_hash.hexdigest()
                                )
                        if whole is not None:
                            self._hashes[upload.id] = (new_offset, whole)
        finally:
            os.close(fd)

        headers = {"Upload-Offset": str(new_offset)}
        if self.draining:  # this instance is going away: the client continues elsewhere
            headers["Connection"] = "close"
        if failure is not None:
            await progress.pause(new_offset)
            return self._error(failure, **headers)
        if new_offset == upload.length:
            self._hashes.pop(upload.id, None)
            completion_failure = await self._complete(upload, whole, progress, file_url)
            if completion_failure is not None:
                return completion_failure
        else:
            await progress.pause(new_offset)
            headers["Upload-Expires"] = format_http_date(
                time.time() + self.settings.tus_expire_after
            )
        return Response(status_code=204, headers=self._headers(**headers))

    async def _complete(
        self,
        upload: TusUpload,
        whole: _Hash | None,
        progress: ProgressPublisher,
        file_url: Callable[[str], str],
    ) -> Response | None:
        """Hash, verify and store a finished upload; a Response only if that failed."""
        part_path = self._part_path(upload.id)
        if whole is not None:
            digest = whole.hexdigest()
        else:
            digest = await anyio.to_thread.run_sync(self._hash_file, part_path)
        if upload.expected_sha256 is not None and upload.expected_sha256 != digest:
            await anyio.to_thread.run_sync(self._remove, upload.id)
            mismatch = ChecksumMismatch(upload.expected_sha256, digest)
            if self.stats is not None:
                self.stats.uploads_failed += 1
            await progress.fail(str(mismatch), upload.length)
            return self._error(mismatch)
        meta = FileMeta(
            id=upload.id,
            size=upload.length,
            sha256=digest,
            name=upload.name,
            content_type=upload.content_type,
            created=time.time(),
        )
        await anyio.to_thread.run_sync(lambda: self.storage.commit(part_path, meta))
        upload.complete = True
        upload.sha256 = digest
        await anyio.to_thread.run_sync(self._save, upload)
        if self.stats is not None:
            self.stats.uploads_completed += 1
        await progress.complete(size=meta.size, sha256=digest, url=file_url(upload.id))
        return None
