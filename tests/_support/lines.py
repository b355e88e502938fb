"""A running process's output, line by line, each read with a deadline.

A thread reads the pipe (so a read never blocks the test forever) and queues the lines;
``next()`` waits for the next one up to ``timeout`` seconds, ``None`` marks the end.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import IO


class Lines:
    """The lines of ``stream`` (a text pipe of a ``subprocess.Popen``) as they come."""

    def __init__(self, stream: IO[str]) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def next(self, timeout: float = 30.0) -> str:
        """The next line (without its line feed); fails if the stream ended or time ran out."""
        line = self._queue.get(timeout=timeout)
        assert line is not None, f"the stream ended; it said: {self.seen}"
        self.seen.append(line.rstrip("\n"))
        return self.seen[-1]

    def until(self, predicate: Callable[[str], bool], timeout: float = 30.0) -> str:
        """Read lines until one satisfies ``predicate``; that line."""
        while True:
            line = self.next(timeout)
            if predicate(line):
                return line

    def rest(self, timeout: float = 30.0) -> list[str]:
        """Every remaining line, once the stream has ended."""
        while (line := self._queue.get(timeout=timeout)) is not None:
            self.seen.append(line.rstrip("\n"))
        self._thread.join(timeout)
        return self.seen
