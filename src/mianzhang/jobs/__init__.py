"""Background jobs whose progress streams live through the event log (layer 4)."""

from ._context import JobContext
from ._model import JobRecord, JobState, job_stream, new_job_id
from ._registry import JobFunction, JobRegistry, JobSpec
from ._runner import JobRunner
from ._service import JobQueue, JobService, LocalJobPool
from ._settings import JobsSettings
from ._store import JobStore, MemoryJobStore


def __getattr__(name: str) -> object:
    """Redis pieces load lazily so ``mianzhang.jobs`` imports without the redis extra."""
    if name in ("RedisJobQueue", "RedisJobStore", "RedisJobWorker"):
        from . import _redis

        return getattr(_redis, name)
    if name == "run_worker":
        from ._worker import run_worker

        return run_worker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    "JobsSettings",
    "LocalJobPool",
    "MemoryJobStore",
    "RedisJobQueue",
    "RedisJobStore",
    "RedisJobWorker",
    "job_stream",
    "new_job_id",
    "run_worker",
]
