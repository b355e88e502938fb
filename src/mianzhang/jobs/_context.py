"""The handle a running job gets: its input and a progress reporter writing to its stream."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .._sse import json_dumps
from ..log import EventLog
from ._model import JobRecord
from ._store import JobStore

__all__ = ["JobContext"]


class JobContext:
    """Given to a job function. ``resources`` holds what the host app shares with jobs (for
    example the LLM gateway under ``"llm"``, file storage under ``"files"``).

    Every report is appended to the job's event stream before the call returns, so a reader
    that connects later replays it; the record's ``progress``/``message`` are updated too.
    """

    __slots__ = ("_log", "_record", "_store", "resources")

    def __init__(
        self, record: JobRecord, log: EventLog, store: JobStore, resources: Mapping[str, Any]
    ) -> None:
        self._record = record
        self._log = log
        self._store = store
        self.resources = resources

    @property
    def id(self) -> str:
        return self._record.id

    @property
    def input(self) -> dict[str, Any]:
        return self._record.input

    @property
    def attempt(self) -> int:
        return self._record.attempt

    async def progress(self, percent: float | None = None, message: str | None = None) -> None:
        """Report progress (``percent`` in 0..100) and/or a message."""
        if percent is not None:
            if not math.isfinite(percent) or not 0 <= percent <= 100:
                raise ValueError(f"percent must be within 0..100, got {percent!r}")
            percent = round(float(percent), 2)
        await self._log.append(
            self._record.stream,
            json_dumps({"percent": percent, "message": message}),
            event="progress",
        )
        await self._store.update(self._record.id, progress=percent, message=message)

    async def partial(self, data: Any) -> None:
        """Publish a partial result (any JSON value) while the job runs."""
        await self._log.append(self._record.stream, json_dumps({"data": data}), event="partial")
