"""FileTail: the file is the log; ids are epoch (inode) + byte offset."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mianzhang.log import LogEvent, Reset
from mianzhang.tails import FileTail


async def take(
    it: AsyncIterator[LogEvent | Reset], n: int, timeout: float = 5.0
) -> list[LogEvent | Reset]:
    out: list[LogEvent | Reset] = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            out.append(await anext(it))
    return out


def lines(items: list[LogEvent | Reset]) -> list[str]:
    return [e.data for e in items if isinstance(e, LogEvent)]


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text)


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "app.log"
    path.write_text("".join(f"line {i}\n" for i in range(20)))
    return path


async def test_starts_with_last_n_lines_then_follows(log_file: Path) -> None:
    it = FileTail(log_file, poll_interval=0.01).follow(last_lines=3)
    try:
        assert lines(await take(it, 3)) == ["line 17", "line 18", "line 19"]
        append(log_file, "new one\nnew two\n")
        assert lines(await take(it, 2)) == ["new one", "new two"]
    finally:
        await it.aclose()


async def test_last_lines_larger_than_file_starts_at_zero(tmp_path: Path) -> None:
    path = tmp_path / "small.log"
    path.write_text("a\nb\n")
    it = FileTail(path, poll_interval=0.01).follow(last_lines=100)
    try:
        assert lines(await take(it, 2)) == ["a", "b"]
    finally:
        await it.aclose()


async def test_partial_line_waits_for_its_line_feed(log_file: Path) -> None:
    it = FileTail(log_file, poll_interval=0.01).follow(last_lines=0)
    try:
        append(log_file, "half")
        nxt = asyncio.ensure_future(anext(it))
        done, _ = await asyncio.wait({nxt}, timeout=0.2)
        assert not done, "a line without LF must not be delivered"
        append(log_file, " and rest\r\n")
        async with asyncio.timeout(5):
            event = await nxt
        assert isinstance(event, LogEvent) and event.data == "half and rest"
    finally:
        await it.aclose()


async def test_ids_are_byte_offsets_and_resume_after_an_id(log_file: Path) -> None:
    tail = FileTail(log_file, poll_interval=0.01)
    it = tail.follow(last_lines=20)
    first = await take(it, 5)
    await it.aclose()
    last = first[-1]
    assert isinstance(last, LogEvent)
    assert last.seq == len("".join(f"line {i}\n" for i in range(5)))
    it = tail.follow(last.id)
    try:
        assert lines(await take(it, 2)) == ["line 5", "line 6"]
    finally:
        await it.aclose()


async def test_rename_rotation_delivers_old_rest_then_new_file(log_file: Path) -> None:
    it = FileTail(log_file, poll_interval=0.01).follow(last_lines=1)
    try:
        await take(it, 1)
        append(log_file, "before rotate\nno newline at end")
        os.rename(log_file, log_file.with_suffix(".1"))
        log_file.write_text("fresh 1\nfresh 2\n")
        got = await take(it, 4)
        assert lines(got) == ["before rotate", "no newline at end", "fresh 1", "fresh 2"]
        assert all(isinstance(e, LogEvent) for e in got)
        old, new = got[1], got[2]
        assert isinstance(old, LogEvent) and isinstance(new, LogEvent)
        assert old.id.split("-")[0] != new.id.split("-")[0], "rotation starts a new epoch"
    finally:
        await it.aclose()


async def test_truncation_yields_reset_then_reads_from_start(log_file: Path) -> None:
    it = FileTail(log_file, poll_interval=0.01).follow(last_lines=1)
    try:
        await take(it, 1)
        with log_file.open("w") as fh:
            fh.write("")
        got = await take(it, 1)
        assert isinstance(got[0], Reset) and got[0].reason == "retention"
        append(log_file, "after truncate\n")
        assert lines(await take(it, 1)) == ["after truncate"]
    finally:
        await it.aclose()


async def test_id_from_another_file_is_a_reset(log_file: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.log"
    other.write_text("x\n")
    it = FileTail(other, poll_interval=0.01).follow(last_lines=1)
    foreign = (await take(it, 1))[0]
    await it.aclose()
    assert isinstance(foreign, LogEvent)
    it = FileTail(log_file, poll_interval=0.01).follow(foreign.id)
    try:
        got = await take(it, 2)
        assert isinstance(got[0], Reset) and got[0].reason == "epoch"
        assert lines(got) == ["line 0"]
    finally:
        await it.aclose()


@pytest.mark.parametrize("bad", ["garbage", "abc-", "-5", "x-1.5"])
async def test_unparseable_id_is_a_reset(log_file: Path, bad: str) -> None:
    it = FileTail(log_file, poll_interval=0.01).follow(bad)
    try:
        got = await take(it, 2)
        assert isinstance(got[0], Reset) and got[0].reason == "invalid_id"
        assert lines(got) == ["line 0"]
    finally:
        await it.aclose()


async def test_long_lines_are_split_and_invalid_utf8_replaced(tmp_path: Path) -> None:
    path = tmp_path / "long.log"
    path.write_bytes(b"0123456789abcdefghij12\n\xff ok\n")
    it = FileTail(path, poll_interval=0.01, max_line_bytes=10).follow(last_lines=10)
    try:
        assert lines(await take(it, 4)) == ["0123456789", "abcdefghij", "12", "\ufffd ok"]
    finally:
        await it.aclose()


async def test_closing_the_iterator_closes_the_file(log_file: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    it = FileTail(log_file, poll_interval=0.01).follow(last_lines=1)
    await take(it, 1)
    assert len(os.listdir("/proc/self/fd")) == before + 1
    await it.aclose()
    assert len(os.listdir("/proc/self/fd")) == before


async def test_cancelling_the_reader_task_closes_the_file(log_file: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    started = asyncio.Event()

    async def reader() -> None:
        async for _ in FileTail(log_file, poll_interval=0.01).follow(last_lines=1):
            started.set()

    task = asyncio.create_task(reader())
    async with asyncio.timeout(5):
        await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(os.listdir("/proc/self/fd")) == before


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        FileTail(tmp_path / "x", poll_interval=0)
    with pytest.raises(ValueError):
        FileTail(tmp_path / "x", max_line_bytes=0)
