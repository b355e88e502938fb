"""The built-in file job ``checksum``: hash an uploaded file and count its lines, streaming it
from file storage with progress by bytes.

Input: ``file`` (a stored file's id, or the file object ``POST /v1/files/{id}/jobs`` puts
there), ``algorithm``. The file is read chunk by chunk (never whole in memory), hashed in a
worker thread, so the event loop stays free; ``percent`` is bytes read / size, reported when
it gains a whole percent, at most every ``progress_interval`` seconds, and 100 at the end.
Result: ``{"file", "name", "size", "algorithm", "digest", "lines", "matches_upload"}`` where
``matches_upload`` compares a sha256 with the digest taken at upload (``None`` for other
algorithms). ``lines`` counts line feeds, plus one for a last line without one.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Mapping
from contextlib import aclosing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .._errors import FileNotFound
from ..files import FILE_ID_PATTERN, FilesService
from ._context import JobContext

__all__ = ["ChecksumInput", "checksum", "prepare_checksum"]


class ChecksumInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str = Field(pattern=f"^{FILE_ID_PATTERN}$")
    algorithm: Literal["sha256", "sha512", "sha1", "md5", "blake2b"] = "sha256"
    chunk_size: int = Field(default=1 << 20, ge=4096, le=16 << 20)
    progress_interval: float = Field(default=0.1, ge=0, le=60)

    @field_validator("file", mode="before")
    @classmethod
    def _file_id(cls, value: Any) -> Any:
        # the files route hands over the whole file object: keep its id
        if isinstance(value, Mapping) and "id" in value:
            return value["id"]
        return value


def _files(resources: Mapping[str, Any]) -> FilesService:
    files = resources.get("files")
    if not isinstance(files, FilesService):
        raise FileNotFound("file storage is disabled here")
    return files


async def prepare_checksum(
    job_input: dict[str, Any], resources: Mapping[str, Any]
) -> dict[str, Any]:
    """At submission: the file must exist (``FileNotFound``, a 404, otherwise)."""
    if "files" in resources:
        await _files(resources).info(job_input["file"])
    return job_input


def _consume(digest: Any, data: bytes) -> int:
    digest.update(data)
    return data.count(b"\n")


async def checksum(ctx: JobContext) -> dict[str, Any]:
    """Hash a stored file and count its lines, with progress by bytes."""
    args = ChecksumInput.model_validate(ctx.input)
    files = _files(ctx.resources)
    meta = await files.info(args.file)
    digest = hashlib.new(args.algorithm)
    await ctx.progress(0, f"reading {meta.size} bytes")
    done = lines = 0
    last_byte = b""
    reported, reported_at = 0, time.monotonic()
    async with aclosing(files.read(args.file, chunk_size=args.chunk_size)) as chunks:
        async for data in chunks:
            lines += await asyncio.to_thread(_consume, digest, data)
            done += len(data)
            last_byte = data[-1:]
            percent = math.floor(100 * done / meta.size) if meta.size else 100
            now = time.monotonic()
            if percent < 100 and percent > reported and now - reported_at >= args.progress_interval:
                reported, reported_at = percent, now
                await ctx.progress(percent, f"{done} of {meta.size} bytes")
    if last_byte and last_byte != b"\n":
        lines += 1
    await ctx.progress(100, f"{done} bytes read")
    hexdigest = digest.hexdigest()
    return {
        "file": meta.id,
        "name": meta.name,
        "size": done,
        "algorithm": args.algorithm,
        "digest": hexdigest,
        "lines": lines,
        "matches_upload": hexdigest == meta.sha256 if args.algorithm == "sha256" else None,
    }
