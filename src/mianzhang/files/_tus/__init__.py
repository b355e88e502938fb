"""Resumable uploads with the tus 1.0.0 protocol (core + creation, termination, expiration,
checksum), so existing tus clients (tus-js-client, tuspy, Uppy) resume interrupted uploads.

Protocol summary (https://tus.io/protocols/resumable-upload):

* ``OPTIONS``: 204 with ``Tus-Version``, ``Tus-Extension``, ``Tus-Max-Size``,
  ``Tus-Checksum-Algorithm``.
* ``POST`` (creation) with ``Upload-Length`` (and optional ``Upload-Metadata``, whose
  ``filename``/``filetype`` become the file's name and type, and optional ``Repr-Digest`` for
  the whole file): 201 with ``Location`` and ``Upload-Expires``. ``Upload-Defer-Length`` is
  not supported (400).
* ``HEAD``: ``Upload-Offset``, ``Upload-Length``, ``Upload-Metadata``, ``Cache-Control:
  no-store``.
* ``PATCH`` with ``Content-Type: application/offset+octet-stream`` and ``Upload-Offset``
  equal to the current offset (409 otherwise; 415 for another type): the bytes are appended.
  With ``Upload-Checksum: ALGO BASE64`` the request's bytes are kept only if they match
  (460 otherwise, offset unchanged).
* ``DELETE`` (termination): 204; the partial upload is removed.
* Every response carries ``Tus-Resumable: 1.0.0``; a request (other than OPTIONS) without it,
  or with another version, gets 412 with ``Tus-Version``. Every error has a JSON body
  ``{"error": {"type", "message"}}`` (an unknown upload: 404 ``not_found``).

Guarantees:

* Bytes of a PATCH that breaks off (client gone, connection cut) are kept up to the last byte
  received (without a checksum header; with one, unverifiable bytes are dropped), so the
  client's next ``HEAD`` sees how far it got and resumes from there.
* One request at a time per upload: a ``HEAD``, ``PATCH`` or ``DELETE`` arriving while a
  PATCH is still running (its client vanished without the server noticing yet) cancels that
  PATCH, waits until it has saved what it received, and only then answers: the offset it
  reports is final. (This lock is per process: run tus behind one worker or sticky routing.)
* When the offset reaches ``Upload-Length`` the file is hashed (sha-256, incrementally when
  the upload arrived in one process without checksum drops, else by re-reading it), checked
  against the announced digest, and moved atomically into the file storage under the upload's
  id: ``GET /v1/files/{id}`` serves it. A whole-file digest mismatch removes the upload (460).
* Incomplete uploads not written to for ``tus_expire_after`` seconds are removed (checked at
  most once a minute, on creation); ``Upload-Expires`` tells clients when.
* Progress is published to the event-log stream ``upload:{id}`` (see ``_progress``); a
  ``PATCH`` holds its (non-final) producer lease while it runs, none is held between two.
* Draining (SIGTERM): :meth:`TusUploads.interrupt_running` stops every running ``PATCH``,
  which saves its bytes and answers its offset with ``Connection: close``; while
  ``draining``, creation and ``PATCH`` get 503 with ``Retry-After``, so clients resume on
  another instance sharing the storage directory.
* A body slower than ``upload_min_rate`` over ``upload_idle_timeout`` is cut with 408
  (keeping what arrived), as for every upload.

Modules: ``_headers`` (the protocol's vocabulary and header parsers), ``_store`` (records and
part files on disk), ``_claims`` (one request at a time per upload), ``_receive`` (one PATCH
body appended and verified), ``_finish`` (a complete upload hashed, verified and stored),
``_handlers`` (:class:`TusUploads`: statuses and headers).
"""

from ._handlers import TusUploads
from ._headers import TUS_VERSION, parse_upload_metadata
from ._store import TusStore, TusUpload

__all__ = ["TUS_VERSION", "TusStore", "TusUpload", "TusUploads", "parse_upload_metadata"]
