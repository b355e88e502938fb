"""The storage directory: stored files, their metadata sidecars, and temporaries.

Layout (all on one file system, so ``os.replace`` is atomic)::

    ROOT/<id>          the file's bytes, never changed once committed
    ROOT/<id>.json     its metadata (client's name and type, size, sha-256, creation time)
    ROOT/.tmp/         uploads being received (``<random>.part``)
    ROOT/.tus/         resumable (tus) uploads in progress

Guarantees:

* A stored file appears under its id only complete: bytes are written to a temporary file in
  ``.tmp``, flushed (``fsync`` unless disabled), and moved into place with ``os.replace``
  after the sidecar. A reader sees either no file or the whole file.
* Nothing from a client becomes part of a path. Ids are generated (:func:`new_file_id`) and
  checked against ``[0-9a-f]{32}`` before use; the data file is opened with ``O_NOFOLLOW``
  (a symlink is refused, even one planted in the directory) and must be a regular file
  (``fstat``) directly inside the resolved root. Any failure reads as :class:`FileNotFound`.
* Everything here is blocking file I/O: callers on an event loop run it in a worker thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._errors import FileNotFound
from ._conditional import Validators
from ._ids import is_file_id
from ._names import DEFAULT_CONTENT_TYPE

__all__ = ["FileMeta", "FileStorage", "OpenedFile", "TempFile"]

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_TMP = ".tmp"
_TUS = ".tus"


@dataclass(frozen=True, slots=True)
class FileMeta:
    """What is known about a stored file. ``name`` and ``content_type`` are what the client
    declared (cleaned); ``sha256`` is hex, computed while receiving."""

    id: str
    size: int
    sha256: str
    name: str | None = None
    content_type: str = DEFAULT_CONTENT_TYPE
    created: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileMeta:
        return cls(
            id=str(data["id"]),
            size=int(data["size"]),
            sha256=str(data["sha256"]),
            name=None if data.get("name") is None else str(data["name"]),
            content_type=str(data.get("content_type") or DEFAULT_CONTENT_TYPE),
            created=float(data.get("created") or 0.0),
        )


@dataclass(slots=True)
class OpenedFile:
    """An open stored file. ``fd`` stays valid (and the bytes unchanged) until :meth:`close`,
    even if the file is deleted meanwhile. ``path`` is only for servers' ``pathsend``."""

    id: str
    fd: int
    path: Path
    size: int
    mtime: int  # whole seconds
    ino: int
    mtime_ns: int
    meta: FileMeta | None

    @property
    def validators(self) -> Validators:
        """A strong ETag: the sha-256 when known, else inode, size and mtime (a committed file
        is replaced, never rewritten, so these change whenever the bytes do)."""
        if self.meta is not None and self.meta.size == self.size:
            etag = f'"{self.meta.sha256}"'
        else:
            etag = f'"{self.ino:x}-{self.size:x}-{self.mtime_ns:x}"'
        return Validators(etag=etag, last_modified=self.mtime)

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


@dataclass(slots=True)
class TempFile:
    """A temporary file in ``.tmp`` opened for writing. :meth:`discard` removes it (idempotent)."""

    path: Path
    fd: int

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def discard(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class FileStorage:
    """Files stored under generated ids in one directory (created if missing)."""

    def __init__(self, directory: str | os.PathLike[str], *, fsync: bool = True) -> None:
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve(strict=True)
        self.tmp_dir = self.root / _TMP
        self.tus_dir = self.root / _TUS
        self.tmp_dir.mkdir(exist_ok=True)
        self.tus_dir.mkdir(exist_ok=True)
        self.fsync = fsync

    # -- paths ----------------------------------------------------------------------------------
    def data_path(self, file_id: str) -> Path:
        """The path of a stored file's bytes; :class:`FileNotFound` if ``file_id`` is not an id."""
        if not is_file_id(file_id):
            raise FileNotFound(str(file_id))
        path = self.root / file_id
        if path.parent != self.root:  # cannot happen for a valid id; kept as a second wall
            raise FileNotFound(file_id)
        return path

    def meta_path(self, file_id: str) -> Path:
        return self.data_path(file_id).with_name(f"{file_id}.json")

    # -- reading --------------------------------------------------------------------------------
    def open_read(self, file_id: str) -> OpenedFile:
        """Open a stored file for reading. :class:`FileNotFound` if it does not exist, is a
        symlink or is not a regular file."""
        path = self.data_path(file_id)
        try:
            fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
        except OSError as exc:  # ENOENT, ELOOP (symlink), EACCES, ...
            raise FileNotFound(file_id) from exc
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise FileNotFound(file_id)
            meta = self.read_meta(file_id)
        except BaseException:
            os.close(fd)
            raise
        return OpenedFile(
            id=file_id,
            fd=fd,
            path=path,
            size=st.st_size,
            mtime=int(st.st_mtime),
            ino=st.st_ino,
            mtime_ns=st.st_mtime_ns,
            meta=meta,
        )

    def read_meta(self, file_id: str) -> FileMeta | None:
        """The sidecar of ``file_id``, or ``None`` if it is missing or unreadable."""
        path = self.meta_path(file_id)
        try:
            fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
        except OSError:
            return None
        try:
            with os.fdopen(fd, "rb") as handle:
                data = json.loads(handle.read(1 << 16))
            return FileMeta.from_json(data)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def exists(self, file_id: str) -> bool:
        try:
            return stat.S_ISREG(os.lstat(self.data_path(file_id)).st_mode)
        except (OSError, FileNotFound):
            return False

    # -- writing --------------------------------------------------------------------------------
    def new_temp(self, directory: Path | None = None) -> TempFile:
        """A fresh, empty temporary file (mode 0600) in ``.tmp`` (or ``directory``)."""
        folder = self.tmp_dir if directory is None else directory
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC
        path = folder / f"{secrets.token_hex(12)}.part"
        fd = os.open(path, flags, 0o600)
        return TempFile(path=path, fd=fd)

    def _write_json_atomically(self, path: Path, data: dict[str, Any]) -> None:
        temp = self.new_temp()
        try:
            payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
            view = memoryview(payload)
            while view:
                view = view[os.write(temp.fd, view) :]
            if self.fsync:
                os.fsync(temp.fd)
            temp.close()
            os.replace(temp.path, path)
        finally:
            temp.discard()

    def commit(self, source: Path, meta: FileMeta, *, fd: int | None = None) -> None:
        """Move the complete file at ``source`` into place as ``meta.id`` (sidecar first, then
        ``os.replace`` of the bytes). ``fd``, if given, is an open descriptor of ``source``
        used to ``fsync`` it. On failure nothing is left under the id."""
        data_path = self.data_path(meta.id)
        meta_path = self.meta_path(meta.id)
        if self.fsync:
            if fd is not None:
                os.fsync(fd)
            else:
                sync_fd = os.open(source, os.O_RDONLY | _O_CLOEXEC)
                try:
                    os.fsync(sync_fd)
                finally:
                    os.close(sync_fd)
        self._write_json_atomically(meta_path, meta.to_json())
        try:
            os.replace(source, data_path)
        except BaseException:
            with contextlib.suppress(OSError):
                meta_path.unlink()
            raise
        if self.fsync:
            self._fsync_dir()

    def _fsync_dir(self) -> None:
        with contextlib.suppress(OSError):
            dir_fd = os.open(self.root, os.O_RDONLY | _O_CLOEXEC)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def delete(self, file_id: str) -> bool:
        """Remove a stored file and its sidecar. Returns whether the file existed."""
        data_path = self.data_path(file_id)
        existed = True
        try:
            data_path.unlink()
        except FileNotFoundError:
            existed = False
        with contextlib.suppress(FileNotFoundError):
            self.meta_path(file_id).unlink()
        return existed

    def purge_temps(self, older_than: float) -> int:
        """Remove temporaries in ``.tmp`` untouched for ``older_than`` seconds (left by a
        process that died mid-upload). Returns how many were removed."""
        removed = 0
        limit = time.time() - older_than
        with os.scandir(self.tmp_dir) as entries:
            for entry in entries:
                try:
                    if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < limit:
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed

    def temp_count(self) -> int:
        """How many temporaries exist in ``.tmp`` (for tests and metrics)."""
        with os.scandir(self.tmp_dir) as entries:
            return sum(1 for _ in entries)
