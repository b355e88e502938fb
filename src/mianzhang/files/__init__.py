"""Large files (layer 4): ranged, conditional streaming downloads; streaming, verified and
resumable (tus 1.0) uploads; progress published to the event log.

Guarantees in one place (details in each module):

* Downloads follow RFC 9110 (``Range``, ``If-Range``, ``If-Match``, ``If-None-Match``,
  ``If-Modified-Since``, ``If-Unmodified-Since``; 206/304/412/416) and never hold more than
  one chunk of a file in memory; ranges are sorted and coalesced in O(n log n).
* Uploads stream to a temporary file, are size-limited while streaming, hashed (sha-256) on
  the fly, verified against an announced digest, and moved into place atomically only when
  complete; an interrupted or refused upload leaves nothing behind.
* Ids are generated, validated by a regex, and resolved without following symlinks: no
  client input reaches a path; client file names are metadata only.
* A request body slower than ``upload_min_rate`` bytes/s over ``upload_idle_timeout``
  seconds is cut with 408 (uvicorn has no body deadline of its own).
* :class:`FilesService` is the one object an app holds: construct it at start, call
  ``drain()`` on SIGTERM and ``aclose()`` at the end; ``stats`` feeds ``/metrics``;
  ``read(id)`` is how a job handed a file reads it.
"""

from ._conditional import (
    EntityTag,
    Precondition,
    Validators,
    evaluate_preconditions,
    format_http_date,
    if_range_allows,
    parse_entity_tags,
    parse_http_date,
)
from ._digest import expected_sha256, repr_digest
from ._download import FileDownload
from ._ids import FILE_ID_PATTERN, is_file_id, new_file_id
from ._multipart import receive_multipart
from ._names import clean_content_type, clean_filename, content_disposition
from ._plan import DownloadPlan, Part, plan_download
from ._progress import ProgressPublisher, progress_stream
from ._ranges import RangeDecision, RangeOutcome, coalesce_ranges, evaluate_range
from ._service import FilesService, file_json
from ._settings import FilesSettings
from ._sink import ChunkWriter, UploadSink
from ._stats import FilesStats
from ._storage import FileMeta, FileStorage, OpenedFile
from ._tus import TUS_VERSION, TusUpload, TusUploads, parse_upload_metadata
from ._upload import limited_body, receive_raw

__all__ = [
    "FILE_ID_PATTERN",
    "TUS_VERSION",
    "ChunkWriter",
    "DownloadPlan",
    "EntityTag",
    "FileDownload",
    "FileMeta",
    "FileStorage",
    "FilesService",
    "FilesSettings",
    "FilesStats",
    "OpenedFile",
    "Part",
    "Precondition",
    "ProgressPublisher",
    "RangeDecision",
    "RangeOutcome",
    "TusUpload",
    "TusUploads",
    "UploadSink",
    "Validators",
    "clean_content_type",
    "clean_filename",
    "coalesce_ranges",
    "content_disposition",
    "evaluate_preconditions",
    "evaluate_range",
    "expected_sha256",
    "file_json",
    "format_http_date",
    "if_range_allows",
    "is_file_id",
    "limited_body",
    "new_file_id",
    "parse_entity_tags",
    "parse_http_date",
    "parse_upload_metadata",
    "plan_download",
    "progress_stream",
    "receive_multipart",
    "receive_raw",
    "repr_digest",
]
