"""tus uploads on disk: a record ``.tus/<id>.json`` and the bytes so far ``.tus/<id>.part``.

Every method is blocking (file system calls): the handlers run them in a worker thread.

Guarantees:

* Only well-formed ids reach the file system (anything else is :class:`FileNotFound`), and
  neither file is ever followed through a symlink (``O_NOFOLLOW``, ``lstat``).
* A record is replaced atomically (written to a temporary file, then ``os.replace``): a
  reader sees the old record or the new one, never a torn one.
* An upload is created with both files or neither; the part file is created exclusively, so
  an id is never reused.
* The offset of an upload is the size of its part file (what was written survives a killed
  process), or its length once complete (the part file has then moved into the storage).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..._errors import FileNotFound
from .._ids import is_file_id
from .._settings import FilesSettings
from .._storage import FileStorage

__all__ = ["TusStore", "TusUpload"]

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


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


class TusStore:
    """The ``.tus`` directory of ``storage``; uploads expire ``settings.tus_expire_after``
    seconds after their last write (completed ones after their creation)."""

    def __init__(self, storage: FileStorage, settings: FilesSettings) -> None:
        self.storage = storage
        self.settings = settings

    @property
    def expire_after(self) -> float:
        return self.settings.tus_expire_after

    def info_path(self, upload_id: str) -> Path:
        """The record's path; :class:`FileNotFound` for an id that is not well-formed."""
        if not is_file_id(upload_id):
            raise FileNotFound(str(upload_id))
        return self.storage.tus_dir / f"{upload_id}.json"

    def part_path(self, upload_id: str) -> Path:
        return self.info_path(upload_id).with_suffix(".part")

    def load(self, upload_id: str) -> TusUpload:
        """The upload's record; :class:`FileNotFound` if absent, a symlink or unreadable."""
        path = self.info_path(upload_id)
        try:
            fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
            with os.fdopen(fd, "rb") as handle:
                return TusUpload.from_json(json.loads(handle.read(1 << 20)))
        except (OSError, ValueError, TypeError) as exc:
            raise FileNotFound(upload_id) from exc

    def save(self, upload: TusUpload) -> None:
        """Replace the upload's record atomically."""
        path = self.info_path(upload.id)
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

    def offset(self, upload: TusUpload) -> int:
        """Bytes received so far; :class:`FileNotFound` if the part file is gone."""
        if upload.complete:
            return upload.length
        try:
            return os.lstat(self.part_path(upload.id)).st_size
        except FileNotFoundError as exc:
            raise FileNotFound(upload.id) from exc

    def expires(self, upload: TusUpload) -> float:
        """When an incomplete upload expires: ``expire_after`` after its last write."""
        try:
            touched = os.lstat(self.part_path(upload.id)).st_mtime
        except FileNotFoundError:
            touched = upload.created
        return touched + self.expire_after

    def create(self, upload: TusUpload) -> None:
        """Create the empty part file (exclusively) and the record; both or neither."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC
        os.close(os.open(self.part_path(upload.id), flags, 0o600))
        try:
            self.save(upload)
        except BaseException:
            self.part_path(upload.id).unlink(missing_ok=True)
            raise

    def open_part(self, upload_id: str) -> int:
        """A write descriptor on the part file (the caller closes it)."""
        return os.open(self.part_path(upload_id), os.O_WRONLY | _O_NOFOLLOW | _O_CLOEXEC)

    def remove(self, upload_id: str) -> None:
        """Remove both files (each if present)."""
        self.part_path(upload_id).unlink(missing_ok=True)
        self.info_path(upload_id).unlink(missing_ok=True)

    def hash_part(self, upload_id: str) -> str:
        """The sha-256 (hex) of the part file, read from the disk."""
        hasher = hashlib.sha256()
        with open(self.part_path(upload_id), "rb", buffering=0) as handle:
            while chunk := handle.read(1 << 20):
                hasher.update(chunk)
        return hasher.hexdigest()

    def purge_expired(self, now: float | None = None, active: frozenset[str] = frozenset()) -> int:
        """Remove uploads (incomplete ones, and records of completed ones) older than
        ``expire_after``, except ``active`` ones. Returns how many were removed."""
        now = time.time() if now is None else now
        removed = 0
        for path in self.storage.tus_dir.glob("*.json"):
            upload_id = path.stem
            if is_file_id(upload_id) and upload_id not in active and self._purge(upload_id, now):
                removed += 1
        return removed

    def _purge(self, upload_id: str, now: float) -> bool:
        """Remove ``upload_id`` if it expired before ``now``; whether it was removed."""
        try:
            upload = self.load(upload_id)
        except FileNotFound:
            return False
        if upload.complete:
            if upload.created + self.expire_after >= now:
                return False
            self.info_path(upload_id).unlink(missing_ok=True)  # the file itself stays stored
            return True
        if self.expires(upload) >= now:
            return False
        self.remove(upload_id)
        return True
