"""Streaming ``multipart/form-data`` uploads, parsed as they arrive (no spooling).

Guarantees (besides those of every upload, see ``_upload``):

* All or nothing: the files of a request are committed only after the closing boundary, and
  any failure (a limit, a malformed body, a client gone, a cancelled request) removes every
  file this request stored or was storing.
* Memory is bounded whatever the body: at most one network chunk's worth of parser events is
  queued, each file goes through its :class:`UploadSink`, and non-file fields are counted,
  not kept (at most ``max_field_size`` bytes each).

Parsing uses python-multipart's streaming ``MultipartParser``: its own limits on part header
count and size apply, plus ours on the boundary (RFC 2046: at most 70 characters from the
``bchars`` set), the number of parts and of files, and the size of non-file fields.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.datastructures import Headers

from .._errors import InvalidUpload, UploadTooLarge
from ._ids import new_file_id
from ._names import clean_content_type, clean_filename
from ._settings import FilesSettings
from ._sink import UploadSink
from ._storage import FileMeta, FileStorage
from ._upload import check_declared_size

__all__ = ["multipart_boundary", "receive_multipart"]

# RFC 2046 §5.1.1: boundary := 0*69<bchars> bcharsnospace
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


def multipart_boundary(content_type: str) -> bytes:
    """The boundary of a ``multipart/form-data`` content type; :class:`InvalidUpload` if it
    is missing or not an RFC 2046 boundary (checked before any parsing)."""
    if len(content_type) > 1024:
        raise InvalidUpload("Content-Type too long")
    essence, params = parse_options_header(content_type)
    if essence != b"multipart/form-data":
        raise InvalidUpload("expected multipart/form-data")
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidUpload("multipart/form-data without a boundary")
    text = boundary.decode("latin-1")
    if _BOUNDARY.fullmatch(text) is None:
        raise InvalidUpload("invalid multipart boundary (RFC 2046: 1 to 70 bchars)")
    return boundary


@dataclass
class _Part:
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    field_name: bytes = b""
    value_name: bytes = b""
    sink: UploadSink | None = None
    name: str | None = None
    content_type: str = ""
    field_size: int = 0
    skip: bool = False


class _MultipartReceiver:
    """Drives ``MultipartParser``: its synchronous callbacks queue events, which are then
    handled asynchronously (file data written through :class:`UploadSink`) before the next
    network chunk is parsed, so at most one chunk's worth of events is queued."""

    def __init__(
        self,
        boundary: bytes,
        storage: FileStorage,
        settings: FilesSettings,
        limit: int,
        stack: AsyncExitStack,
    ) -> None:
        self.stack = stack
        self.storage = storage
        self.settings = settings
        self.limit = limit
        self.events: list[tuple[str, bytes]] = []
        self.parts = 0
        self.files: list[UploadSink] = []
        self.names: dict[str, tuple[str | None, str]] = {}
        self.part: _Part | None = None
        self.ended = False
        self.stored = 0
        callbacks: Any = {
            "on_part_begin": lambda: self.events.append(("begin", b"")),
            "on_header_field": lambda d, s, e: self.events.append(("hfield", d[s:e])),
            "on_header_value": lambda d, s, e: self.events.append(("hvalue", d[s:e])),
            "on_header_end": lambda: self.events.append(("hend", b"")),
            "on_headers_finished": lambda: self.events.append(("headers", b"")),
            "on_part_data": lambda d, s, e: self.events.append(("data", d[s:e])),
            "on_part_end": lambda: self.events.append(("end", b"")),
            "on_end": lambda: self.events.append(("done", b"")),
        }
        try:
            self.parser = MultipartParser(
                boundary,
                callbacks,
                max_header_count=settings.max_part_headers,
                max_header_size=settings.max_part_header_size,
            )
        except FormParserError as exc:
            raise InvalidUpload(str(exc)) from exc

    async def feed(self, chunk: bytes) -> None:
        try:
            self.parser.write(chunk)
        except FormParserError as exc:
            raise InvalidUpload(f"malformed multipart body: {exc}") from exc
        events, self.events = self.events, []
        for kind, data in events:
            await self._handle(kind, data)

    async def _handle(self, kind: str, data: bytes) -> None:
        """Apply one parser event (in the order the parser reported them)."""
        part = self.part
        match kind:
            case "data":
                await self._on_data(data)
            case "begin":
                self.parts += 1
                if self.parts > self.settings.max_parts:
                    raise InvalidUpload(f"more than {self.settings.max_parts} multipart parts")
                self.part = _Part()
            case "hfield" if part is not None:
                part.field_name += data
            case "hvalue" if part is not None:
                part.value_name += data
            case "hend" if part is not None:
                part.headers.append((part.field_name.lower(), part.value_name))
                part.field_name = part.value_name = b""
            case "headers" if part is not None:
                await self._start_part(part)
            case "end":
                self.part = None
            case "done":
                self.ended = True

    async def _on_data(self, data: bytes) -> None:
        """A piece of the current part's body: written to its file, or counted (a field)."""
        part = self.part
        if part is None or part.skip:
            return
        if part.sink is not None:
            await part.sink.write(data)
            return
        part.field_size += len(data)
        if part.field_size > self.settings.max_field_size:
            raise InvalidUpload(f"a form field exceeds {self.settings.max_field_size} bytes")

    async def _start_part(self, part: _Part) -> None:
        headers = dict(part.headers)
        disposition = headers.get(b"content-disposition")
        if disposition is None:
            raise InvalidUpload("a multipart part has no Content-Disposition")
        kind, params = parse_options_header(disposition)
        if kind != b"form-data" or b"name" not in params:
            raise InvalidUpload("a multipart part is not form-data with a name")
        filename = params.get(b"filename")
        if filename is None:
            return  # a plain field: counted, bounded, not kept
        if not filename:
            part.skip = True  # an empty file input of a browser form
            return
        if len(self.files) >= self.settings.max_files:
            raise InvalidUpload(f"more than {self.settings.max_files} files")
        part.name = clean_filename(filename.decode("utf-8", errors="replace"))
        raw_type = headers.get(b"content-type", b"").decode("latin-1")
        part.content_type = clean_content_type(raw_type)
        sink = await self.stack.enter_async_context(
            UploadSink(
                self.storage, new_file_id(), limit=self.limit, flush_size=self.settings.write_buffer
            )
        )
        self.files.append(sink)
        self.names[sink.file_id] = (part.name, part.content_type)
        part.sink = sink


async def receive_multipart(
    body: AsyncIterator[bytes],
    headers: Headers,
    *,
    storage: FileStorage,
    settings: FilesSettings,
) -> list[FileMeta]:
    """Store every file part of a ``multipart/form-data`` body; return their metadata in
    order. All or nothing: files are committed only after the closing boundary, and any
    failure removes what this request stored. (No progress events: the ids are not known to
    the client before the response; live progress is what tus uploads are for.)"""
    limit = settings.max_upload_size
    check_declared_size(headers, limit)
    boundary = multipart_boundary(headers.get("content-type", ""))
    received = 0
    committed: list[FileMeta] = []
    try:
        # The stack owns every part's UploadSink: leaving it discards what was not committed.
        async with AsyncExitStack() as stack:
            receiver = _MultipartReceiver(boundary, storage, settings, limit, stack)
            async for chunk in body:
                received += len(chunk)
                if received > limit:
                    raise UploadTooLarge(limit)
                await receiver.feed(chunk)
            if not receiver.ended:
                raise InvalidUpload("the multipart body ended before its closing boundary")
            if not receiver.files:
                raise InvalidUpload("no file in the multipart body")
            for sink in receiver.files:
                name, content_type = receiver.names[sink.file_id]
                committed.append(await sink.commit(name=name, content_type=content_type))
    except BaseException:
        for meta in committed:  # all or nothing (two unlinks each: synchronous, cancel-proof)
            storage.delete(meta.id)
        raise
    return committed
