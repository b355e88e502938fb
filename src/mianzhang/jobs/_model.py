"""What a job is: its record (state machine) and the events it writes to its log stream.

States: ``queued`` -> ``running`` -> ``succeeded`` | ``failed`` | ``cancelled``; a job whose
worker died goes from ``running`` back to ``running`` with ``attempt + 1`` (at least once).
Terminal states never change again.

Events on the job's stream (``job:{id}`` in the event log), data is JSON:
``state`` ``{"state", "attempt"}``, ``progress`` ``{"percent", "message"}``, ``partial``
``{"data"}``, and exactly one final ``complete`` ``{"result"}`` or ``error``
``{"type", "message"}`` or ``state`` ``{"state": "cancelled"}`` before the stream is closed.
When the worker running an attempt is lost (``_runner.py``, "Liveness"): ``state``
``{"state": "requeued", "attempt", "reason": "producer_lost"}`` (the stream stays open, the
next attempt follows), or, for a job nothing can re-run, ``error`` ``{"type":
"producer_lost"}`` and the stream ends FAILED.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["JobRecord", "JobState", "job_stream", "new_job_id"]


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


def new_job_id() -> str:
    return "job_" + secrets.token_hex(8)


def job_stream(job_id: str) -> str:
    """The event-log stream holding a job's progress."""
    return f"job:{job_id}"


@dataclass(slots=True)
class JobRecord:
    id: str
    type: str
    input: dict[str, Any]
    state: JobState = JobState.QUEUED
    attempt: int = 0
    progress: float | None = None
    message: str | None = None
    result: Any = None
    error: dict[str, str] | None = None
    cancel_requested: bool = False
    worker: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None

    @property
    def stream(self) -> str:
        return job_stream(self.id)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        values = dict(data)
        values["state"] = JobState(values["state"])
        return cls(**values)
