"""Counters of the file feature, for ``/metrics`` (the server maps them to Prometheus).

One :class:`FilesStats` per :class:`~mianzhang.files.FilesService`; updated only from the
event loop, so plain integers suffice. Counters only grow; ``active_*`` are gauges.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["FilesStats"]


@dataclass(slots=True)
class FilesStats:
    """What the file routes did since the service was created.

    * ``upload_bytes``: request-body bytes received by upload routes (raw, multipart, tus
      ``PATCH``), whether or not the upload was then kept.
    * ``uploads_completed`` / ``uploads_failed``: uploads that ended stored / refused or
      interrupted (a tus ``PATCH`` that leaves its upload incomplete counts as neither).
    * ``download_bytes``: bytes of file bodies handed to the server (200/206 responses).
    * ``downloads``: 200/206 responses that started sending a body.
    """

    upload_bytes: int = 0
    uploads_completed: int = 0
    uploads_failed: int = 0
    active_uploads: int = 0
    download_bytes: int = 0
    downloads: int = 0
    active_downloads: int = 0

    def snapshot(self) -> dict[str, int]:
        """The current values by name."""
        return asdict(self)
