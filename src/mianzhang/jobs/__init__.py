"""Background jobs whose progress streams live through the event log (layer 4)."""

from ._context import JobContext
from ._model import JobRecord, JobState, job_stream, new_job_id
from ._registry import JobFunction, JobRegistry, JobSpec
from ._runner import JobRunner
from ._service import JobQueue, JobService, LocalJobPool
from ._store import JobStore, MemoryJobStore

__all__ = [
    "JobContext",
    "JobFunction",
    "JobQueue",
    "JobRecord",
    "JobRegistry",
    "JobRunner",
    "JobService",
    "JobSpec",
    "JobState",
    "JobStore",
    "LocalJobPool",
    "MemoryJobStore",
    "job_stream",
    "new_job_id",
]
