"""ChunkWriter: bytes in order, hashed exactly once, bounded batches, cancellation-safe."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import anyio
import pytest

from mianzhang._errors import UploadTooLarge
from mianzhang.files import ChunkWriter


def chunks_of(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(data):
        size = rng.randint(1, 5000)
        out.append(data[i : i + size])
        i += size
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_everything_written_in_order_and_hashed(tmp_path: Path, seed: int) -> None:
    data = os.urandom(300_000)
    path = tmp_path / "out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    hasher = hashlib.sha256()
    try:
        async with ChunkWriter(fd, hashers=[hasher], flush_size=8192) as writer:
            for chunk in chunks_of(data, seed):
                await writer.write(chunk)
            await writer.flush()
            assert writer.written == writer.received == len(data)
    finally:
        os.close(fd)
    assert path.read_bytes() == data
    assert hasher.digest() == hashlib.sha256(data).digest()


@pytest.mark.parametrize("stop_after", [3, 17, 60])
async def test_cancelled_writer_keeps_a_consistent_prefix(tmp_path: Path, stop_after: int) -> None:
    """Cancel the writing task at an arbitrary point, then flush under a shield (as tus does):
    the file is exactly the first ``written`` bytes and the hash covers exactly those."""
    data = os.urandom(400_000)
    path = tmp_path / "out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    hasher = hashlib.sha256()
    try:
        async with ChunkWriter(fd, hashers=[hasher], flush_size=4096) as writer:
            with anyio.CancelScope() as scope:
                for index, chunk in enumerate(chunks_of(data, stop_after)):
                    if index == stop_after:
                        scope.cancel()
                    await writer.write(chunk)
            assert scope.cancelled_caught
            with anyio.CancelScope(shield=True):
                await writer.flush()
            written = writer.written
            assert written == writer.received
    finally:
        os.close(fd)
    assert 0 < written < len(data)
    assert path.read_bytes() == data[:written]
    assert hasher.digest() == hashlib.sha256(data[:written]).digest()


async def test_limit_is_checked_before_keeping_a_chunk(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    try:
        async with ChunkWriter(fd, limit=10) as writer:
            await writer.write(b"123456")
            with pytest.raises(UploadTooLarge):
                await writer.write(b"78901")
            await writer.flush()
            assert writer.written == 6
    finally:
        os.close(fd)


async def test_disk_errors_surface_on_the_next_call(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "out", os.O_RDONLY | os.O_CREAT)  # writes fail with EBADF
    try:
        async with ChunkWriter(fd, flush_size=1) as writer:
            await writer.write(b"x")
            with pytest.raises(OSError):
                await writer.flush()
            with pytest.raises(OSError):
                await writer.write(b"y")
    finally:
        os.close(fd)


async def test_must_be_entered(tmp_path: Path) -> None:
    writer = ChunkWriter(0)
    with pytest.raises(RuntimeError):
        await writer.write(b"x")
