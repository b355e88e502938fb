"""Where job records live: a Protocol with a memory implementation here and Redis in
``_redis.py``. Terminal records are kept ``keep_finished`` seconds, then dropped."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Protocol

from ._model import JobRecord, JobState

__all__ = ["JobStore", "MemoryJobStore"]


class JobStore(Protocol):
    """Where job records live, shared by the service (submit, cancel) and the runners.

    Guarantees of every implementation (``tests/jobs/contract`` runs them on each): a record
    reads back as stored (JSON values exactly); the first terminal state wins and a terminal
    record never changes again; unknown ids are ``None`` (``update`` and ``transition`` never
    create a record); ``recent`` lists the newest records first (by creation), at most
    ``limit``; a terminal record is forgotten ``keep_finished`` seconds after it ended."""

    async def create(self, record: JobRecord) -> None:
        """Store a new record (its id must be unused)."""
        ...

    async def get(self, job_id: str) -> JobRecord | None:
        """The record, or ``None`` if unknown or forgotten."""
        ...

    async def update(self, job_id: str, **fields: Any) -> JobRecord | None:
        """Set fields of a non-terminal record; returns the record (unchanged if terminal),
        or ``None`` if unknown."""
        ...

    async def transition(self, job_id: str, state: JobState, **fields: Any) -> JobRecord | None:
        """Move to ``state`` (with fields) unless the record is already terminal: the first
        terminal state wins. Returns the updated record, or ``None`` if refused or unknown."""
        ...

    async def recent(self, limit: int = 50) -> list[JobRecord]:
        """Up to ``limit`` records still kept, newest first."""
        ...


class MemoryJobStore:
    """Records in a dict, bounded: at most ``max_records``; terminal ones are evicted first,
    oldest first, and after ``keep_finished`` seconds."""

    def __init__(self, *, max_records: int = 10_000, keep_finished: float = 3600.0) -> None:
        self._records: OrderedDict[str, JobRecord] = OrderedDict()
        self._max = max_records
        self._keep = keep_finished

    def _evict(self) -> None:
        now = time.time()
        for job_id, rec in list(self._records.items()):
            expired = rec.finished is not None and now - rec.finished > self._keep
            if expired or (len(self._records) > self._max and rec.state.terminal):
                del self._records[job_id]

    async def create(self, record: JobRecord) -> None:
        if record.id in self._records:
            raise ValueError(f"job id {record.id!r} exists")
        self._records[record.id] = record
        if len(self._records) > self._max:
            self._evict()

    async def get(self, job_id: str) -> JobRecord | None:
        rec = self._records.get(job_id)
        if rec is not None and rec.finished is not None and time.time() - rec.finished > self._keep:
            del self._records[job_id]
            return None
        return rec

    async def update(self, job_id: str, **fields: Any) -> JobRecord | None:
        rec = self._records.get(job_id)
        if rec is None:
            return None
        if not rec.state.terminal:
            for name, value in fields.items():
                setattr(rec, name, value)
        return rec

    async def transition(self, job_id: str, state: JobState, **fields: Any) -> JobRecord | None:
        rec = self._records.get(job_id)
        if rec is None or rec.state.terminal:
            return None
        rec.state = state
        for name, value in fields.items():
            setattr(rec, name, value)
        if state.terminal:
            rec.finished = time.time()
        return rec

    async def recent(self, limit: int = 50) -> list[JobRecord]:
        self._evict()
        found: list[JobRecord] = []
        for rec in reversed(self._records.values()):
            if len(found) >= limit:
                break
            found.append(rec)
        return found
