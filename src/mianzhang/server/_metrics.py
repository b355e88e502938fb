"""Prometheus metrics of the streaming core (each app has its own registry: no globals).

Besides the features' counters: the standard ``process_*`` metrics (resident memory, open
file descriptors, CPU; Linux) and ``mianzhang_asyncio_tasks``, the tasks alive in the event
loop serving ``/metrics``: the three numbers a soak test watches for leaks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .._responses import StreamSupervisor
from ..files import FilesStats
from ..jobs import JobStatistics
from ..log import EventLog, LogStatistics
from ..log.serve import ServeStatistics

__all__ = ["register_stream_metrics"]


Metric = GaugeMetricFamily | CounterMetricFamily


def _stream_metrics(supervisor: StreamSupervisor) -> Iterator[Metric]:
    stats = supervisor.stats
    yield GaugeMetricFamily(
        "mianzhang_streams_active", "Streaming responses currently open", value=stats.active
    )
    ended = CounterMetricFamily(
        "mianzhang_streams_ended", "Streaming responses ended, by how", labels=["reason"]
    )
    for reason, value in (
        ("completed", stats.completed),
        ("disconnected", stats.disconnected),
        ("send_timeout", stats.send_timeouts),
        ("error", stats.errors),
        ("drained", stats.drained),
    ):
        ended.add_metric([reason], value)
    yield ended
    yield CounterMetricFamily(
        "mianzhang_streams_opened", "Streaming responses opened", value=stats.opened
    )
    yield CounterMetricFamily(
        "mianzhang_stream_events_sent", "Events written to streams", value=stats.items_sent
    )
    yield CounterMetricFamily(
        "mianzhang_stream_bytes_sent", "Body bytes written to streams", value=stats.bytes_sent
    )


def _runtime_metrics() -> Iterator[Metric]:
    try:
        tasks = len(asyncio.all_tasks())
    except RuntimeError:  # collected outside the event loop's thread: nothing to count
        return
    yield GaugeMetricFamily(
        "mianzhang_asyncio_tasks", "Tasks alive in the event loop (a leak grows it)", tasks
    )


def _serving_metrics(serving: ServeStatistics) -> Iterator[Metric]:
    yield CounterMetricFamily(
        "mianzhang_stream_resumes",
        "Readers that resumed after a Last-Event-ID",
        value=serving.resumes,
    )
    resets = CounterMetricFamily(
        "mianzhang_stream_resets", "reset events sent (lost history)", labels=["reason"]
    )
    for reason, value in sorted(serving.resets.items()):
        resets.add_metric([reason], value)
    yield resets


def _log_metrics(log: EventLog) -> Iterator[Metric]:
    statistics = getattr(log, "statistics", None)
    if statistics is None:
        return
    held: LogStatistics = statistics()
    for name, help_text in (
        ("streams", "Streams held or watched by this instance's event log"),
        ("events", "Events held in this process's memory by the event log"),
        ("followers", "Open log followers (readers) on this instance"),
    ):
        yield GaugeMetricFamily(f"mianzhang_log_{name}", help_text, getattr(held, name))


def _job_metrics(jobs: JobStatistics) -> Iterator[Metric]:
    yield CounterMetricFamily(
        "mianzhang_jobs_submitted", "Jobs accepted by this instance", value=jobs.submitted
    )
    yield GaugeMetricFamily(
        "mianzhang_jobs_running", "Jobs running in this instance", value=jobs.running
    )
    finished = CounterMetricFamily(
        "mianzhang_jobs_finished", "Jobs ended by this instance's runners", labels=["state"]
    )
    for state in ("succeeded", "failed", "cancelled"):
        finished.add_metric([state], jobs.finished.get(state, 0))
    yield finished


def _file_metrics(f: FilesStats) -> Iterator[Metric]:
    for name, value, help_text in (
        ("upload_bytes", f.upload_bytes, "Request-body bytes received by uploads"),
        ("download_bytes", f.download_bytes, "File-body bytes sent by downloads"),
        ("uploads_completed", f.uploads_completed, "Uploads stored"),
        ("uploads_failed", f.uploads_failed, "Uploads refused or interrupted"),
        ("downloads", f.downloads, "Downloads that started sending a body"),
    ):
        yield CounterMetricFamily(f"mianzhang_files_{name}", help_text, value=value)
    yield GaugeMetricFamily(
        "mianzhang_files_active_transfers",
        "Uploads and downloads in progress",
        value=f.active_uploads + f.active_downloads,
    )


class _StreamCollector(Collector):
    def __init__(
        self,
        supervisor: StreamSupervisor,
        log: EventLog,
        files: FilesStats | None,
        serving: ServeStatistics | None,
        jobs: JobStatistics | None,
    ) -> None:
        self.jobs = jobs
        self.supervisor = supervisor
        self.log = log
        self.files = files
        self.serving = serving

    def collect(self) -> Iterator[Metric]:
        """Read every statistic now: streams, resumes, the log, jobs, files."""
        yield from _stream_metrics(self.supervisor)
        yield from _runtime_metrics()
        if self.serving is not None:
            yield from _serving_metrics(self.serving)
        yield from _log_metrics(self.log)
        if self.jobs is not None:
            yield from _job_metrics(self.jobs)
        if self.files is not None:
            yield from _file_metrics(self.files)


def register_stream_metrics(
    registry: CollectorRegistry,
    supervisor: StreamSupervisor,
    log: EventLog,
    files: FilesStats | None = None,
    serving: ServeStatistics | None = None,
    jobs: JobStatistics | None = None,
) -> None:
    registry.register(_StreamCollector(supervisor, log, files, serving, jobs))
    ProcessCollector(registry=registry)
