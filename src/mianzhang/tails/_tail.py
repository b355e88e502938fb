"""Follow a growing text file as an event log: the file *is* the log.

Ids are ``"{epoch}-{offset}"``: ``offset`` is the byte offset just after the line (so resuming
after an id reads the next line), ``epoch`` names the file's identity (device and inode). A
rotation by rename gives a new inode, hence a new epoch; truncation moves the end below a
reader's offset. Either way a reader whose id names lines that are no longer there gets a
:class:`~mianzhang.log.Reset` first and continues from the start of the current file: never a
silent gap.

Guarantees
----------
* Only complete lines (ending in LF) are delivered; a partial last line waits until its LF
  arrives. Lines longer than ``max_line_bytes`` are split into pieces of at most that size.
* On rename-rotation, the rest of the old file still readable through the open descriptor is
  delivered before switching to the new file (no lines lost between the last poll and the
  rename).
* Bytes are decoded as UTF-8 with U+FFFD for invalid sequences; the trailing LF (and a CR
  before it) is not part of the line.
* The open file is closed when the iterator is closed or its task cancelled.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import BinaryIO

from ..log._protocol import LogEvent, Reset, format_id, parse_id

__all__ = ["FileTail"]

_READ_SIZE = 64 * 1024


def _epoch(st: os.stat_result) -> str:
    return f"{st.st_dev:x}i{st.st_ino:x}"


def _last_lines_offset(fh: BinaryIO, size: int, count: int) -> int:
    """Offset where the last ``count`` complete lines start (a trailing partial line is not
    counted, so ``count=0`` starts at the beginning of a line still being written). Reads
    backwards in blocks: cost is proportional to those lines, not the file."""
    count = max(count, 0)
    found = 0
    pos = size
    while pos > 0:
        start = max(0, pos - 8192)
        fh.seek(start)
        chunk = fh.read(pos - start)
        idx = len(chunk)
        while (idx := chunk.rfind(b"\n", 0, idx)) >= 0:
            found += 1
            if found > count:
                return start + idx + 1
        pos = start
    return 0


class FileTail:
    """Follow one file. ``poll_interval`` bounds how late a new line is noticed."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        poll_interval: float = 0.2,
        max_line_bytes: int = 64 * 1024,
    ) -> None:
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        if max_line_bytes <= 0:
            raise ValueError("max_line_bytes must be positive")
        self.path = Path(path)
        self.poll_interval = poll_interval
        self.max_line_bytes = max_line_bytes

    async def follow(
        self, after: str | None = None, *, last_lines: int = 10
    ) -> AsyncGenerator[LogEvent | Reset, None]:
        """Yield lines after ``after`` (or the last ``last_lines`` lines when ``after`` is None),
        then new lines as they are appended, forever (until the iterator is closed).

        Raises ``FileNotFoundError`` if the file does not exist when following starts.
        """
        fh = await asyncio.to_thread(self.path.open, "rb")
        try:
            st = os.fstat(fh.fileno())
            epoch = _epoch(st)
            offset = await self._start_offset(fh, st.st_size, epoch, after, last_lines)
            if isinstance(offset, Reset):
                yield offset
                offset = 0
            pending = b""  # bytes read after ``offset`` that do not yet form a line
            while True:
                data = await asyncio.to_thread(self._read_from, fh, offset + len(pending))
                if data:
                    pending += data
                    for event in self._emit(epoch, offset, pending, final=False):
                        yield event
                        pending = pending[event.seq - offset :]
                        offset = event.seq
                    continue
                rotated = await asyncio.to_thread(self._rotated, fh, offset + len(pending))
                if rotated == "renamed":
                    # Deliver what the old file still holds, even a last line without LF.
                    while data := await asyncio.to_thread(
                        self._read_from, fh, offset + len(pending)
                    ):
                        pending += data
                    for event in self._emit(epoch, offset, pending, final=True):
                        yield event
                    fh.close()
                    fh = await asyncio.to_thread(self.path.open, "rb")
                    epoch, offset, pending = _epoch(os.fstat(fh.fileno())), 0, b""
                    continue
                if rotated == "truncated":
                    yield Reset("retention", format_id(epoch, offset), format_id(epoch, 0), epoch)
                    offset, pending = 0, b""
                    continue
                await asyncio.sleep(self.poll_interval)
        finally:
            fh.close()

    # -- helpers ---------------------------------------------------------------------------------
    async def _start_offset(
        self, fh: BinaryIO, size: int, epoch: str, after: str | None, last_lines: int
    ) -> int | Reset:
        if after is None:
            return await asyncio.to_thread(_last_lines_offset, fh, size, last_lines)
        parsed = parse_id(after)
        if parsed is None:
            return Reset("invalid_id", after, format_id(epoch, 0), epoch)
        their_epoch, their_offset = parsed
        if their_epoch != epoch:
            return Reset("epoch", after, format_id(epoch, 0), epoch)
        if their_offset > size:
            return Reset("retention", after, format_id(epoch, 0), epoch)
        return their_offset

    @staticmethod
    def _read_from(fh: BinaryIO, position: int) -> bytes:
        fh.seek(position)
        return fh.read(_READ_SIZE)

    def _rotated(self, fh: BinaryIO, position: int) -> str | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None  # renamed away, new file not created yet: keep the old one
        own = os.fstat(fh.fileno())
        if (st.st_dev, st.st_ino) != (own.st_dev, own.st_ino):
            return "renamed"
        if own.st_size < position:
            return "truncated"
        return None

    def _emit(self, epoch: str, offset: int, pending: bytes, *, final: bool) -> list[LogEvent]:
        events: list[LogEvent] = []
        start = 0
        limit = self.max_line_bytes
        while start < len(pending):
            lf = pending.find(b"\n", start, start + limit + 1)
            if lf < 0:
                if len(pending) - start >= limit:
                    end, nxt = start + limit, start + limit
                elif final:
                    end, nxt = len(pending), len(pending)
                else:
                    break
            else:
                end, nxt = lf, lf + 1
            raw = pending[start:end]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            seq = offset + nxt
            events.append(LogEvent(format_id(epoch, seq), seq, raw.decode("utf-8", "replace")))
            start = nxt
        return events
