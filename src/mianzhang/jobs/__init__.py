"""Background jobs whose progress streams live through the event log (layer 4).

Built-in job types (``builtin_jobs()``): ``summarize`` (LLM gateway) and ``checksum`` (an
uploaded file). :class:`JobHost` builds an app's :class:`JobService` from
:class:`JobsSettings`: the in-process pool, or Redis with ``mianzhang worker`` processes.
"""

from ._builtin import builtin_jobs, job_registry, job_resources
from ._context import JobContext
from ._model import JobRecord, JobState, job_stream, new_job_id
from ._registry import JobFunction, JobPrepare, JobRegistry, JobSpec
from ._runner import JobRunner
from ._service import JobQueue, JobService, LocalJobPool
from ._settings import JobsSettings
from ._setup import JobHost
from ._stats import JobStatistics
from ._store import JobStore, MemoryJobStore
from ._summarize import split_text


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
    "JobHost",
    "JobPrepare",
    "JobQueue",
    "JobRecord",
    "JobRegistry",
    "JobRunner",
    "JobService",
    "JobSpec",
    "JobState",
    "JobStatistics",
    "JobStore",
    "JobsSettings",
    "LocalJobPool",
    "MemoryJobStore",
    "RedisJobQueue",
    "RedisJobStore",
    "RedisJobWorker",
    "builtin_jobs",
    "job_registry",
    "job_resources",
    "job_stream",
    "new_job_id",
    "run_worker",
    "split_text",
]
