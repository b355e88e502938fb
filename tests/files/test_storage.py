"""The storage directory: atomic commits, generated ids only, stale temporaries purged."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mianzhang._errors import FileNotFound
from mianzhang.files import FileMeta, FileStorage, is_file_id, new_file_id


def test_ids() -> None:
    ids = {new_file_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(is_file_id(i) for i in ids)
    for bad in ("", "../x", "0" * 31, "0" * 33, "G" * 32, "0" * 31 + "\n", None, 5):
        assert not is_file_id(bad)


def test_data_path_refuses_non_ids(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    for bad in ("..", "../etc/passwd", "/etc/passwd", ".tmp", "a" * 31 + "/"):
        with pytest.raises(FileNotFound):
            storage.data_path(bad)
    file_id = new_file_id()
    assert storage.data_path(file_id) == tmp_path.resolve() / file_id


def test_commit_is_atomic_and_sidecar_first(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    temp = storage.new_temp()
    os.write(temp.fd, b"abc")
    file_id = new_file_id()
    assert not storage.exists(file_id)
    meta = FileMeta(id=file_id, size=3, sha256="00" * 32, name="n", created=1.0)
    storage.commit(temp.path, meta, fd=temp.fd)
    temp.close()
    assert storage.exists(file_id)
    assert storage.read_meta(file_id) == meta
    assert not temp.path.exists()
    opened = storage.open_read(file_id)
    try:
        assert os.pread(opened.fd, 10, 0) == b"abc"
        assert opened.validators.etag == f'"{"00" * 32}"'
    finally:
        opened.close()
    assert storage.delete(file_id) is True
    assert storage.delete(file_id) is False
    assert storage.read_meta(file_id) is None


def test_failed_commit_leaves_nothing(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    meta = FileMeta(id=new_file_id(), size=0, sha256="00" * 32)
    with pytest.raises(FileNotFoundError):
        storage.commit(tmp_path / ".tmp" / "missing.part", meta)
    assert not storage.exists(meta.id)
    assert storage.read_meta(meta.id) is None
    assert storage.temp_count() == 0


def test_purge_stale_temporaries(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    old, fresh = storage.new_temp(), storage.new_temp()
    old.close()
    fresh.close()
    past = time.time() - 3 * 24 * 3600
    os.utime(old.path, (past, past))
    assert storage.purge_temps(24 * 3600) == 1
    assert not old.path.exists() and fresh.path.exists()


def test_open_read_of_a_symlink_is_not_found(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path / "s")
    target = tmp_path / "outside"
    target.write_bytes(b"secret")
    file_id = new_file_id()
    (storage.root / file_id).symlink_to(target)
    with pytest.raises(FileNotFound):
        storage.open_read(file_id)
    # a symlinked sidecar is ignored too
    real_id = new_file_id()
    (storage.root / real_id).write_bytes(b"x")
    (storage.root / f"{real_id}.json").symlink_to(target)
    assert storage.read_meta(real_id) is None
