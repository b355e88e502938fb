"""Settings of file storage and transfer (``Settings.files``; environment
``MIANZHANG_FILES__DIRECTORY=/srv/files`` and so on). Validated at start."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ._ranges import DEFAULT_MAX_RANGES, DEFAULT_MAX_SPECS

__all__ = ["FilesSettings"]

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


class FilesSettings(BaseModel):
    """Where files live, how they are streamed, and the limits on what is accepted."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    directory: Path = Path("var/files")
    # Downloads. bench/files_bench.py, 16 KiB .. 1 MiB (loopback, 2 shared cores, noisy: see
    # bench/results/files*.json). Server CPU per GB (the steadier measure under contention),
    # two runs: 16 KiB 0.60/0.67 s, 64 KiB 0.34/0.34, 256 KiB 0.37/0.26, 512 KiB 0.39/0.30,
    # 1 MiB 0.43/0.30 (Starlette FileResponse 1.47/1.38, nginx sendfile 0.19/0.04).
    # Throughput, median of 5: 773 / 1556 / 1716 / 2178 / 1735 MB/s (Starlette 681, nginx
    # 1869). Server RSS per stalled download: 0.13 / 0.22 / 0.78 / 1.5 / 3.0 MiB.
    # 16 KiB doubles the CPU; past 256 KiB nothing is gained while memory per slow client
    # keeps doubling. 256 KiB: at or below 64 KiB's CPU, 4x fewer sends, < 1 MiB per client.
    chunk_size: int = Field(default=256 * KiB, ge=4 * KiB, le=16 * MiB)
    max_ranges: int = Field(default=DEFAULT_MAX_RANGES, ge=1)
    max_range_specs: int = Field(default=DEFAULT_MAX_SPECS, ge=1)
    # Uploads.
    max_upload_size: int = Field(default=8 * GiB, ge=1)
    write_buffer: int = Field(default=1 * MiB, ge=4 * KiB, le=64 * MiB)
    # uvicorn has no deadline for reading a body (each trickled byte resets its timer): a
    # body is cut with 408 when a window of ``upload_idle_timeout`` seconds brings fewer than
    # ``upload_min_rate * upload_idle_timeout`` bytes (at least one byte). Defaults: 60 KiB
    # per minute, far below any real client; 0 keeps only the "at least one byte" rule.
    upload_idle_timeout: float = Field(default=60.0, gt=0)
    upload_min_rate: float = Field(default=1024.0, ge=0)
    fsync: bool = True
    # multipart/form-data limits (python-multipart enforces the header ones while parsing).
    max_parts: int = Field(default=64, ge=1)
    max_files: int = Field(default=16, ge=1)
    max_field_size: int = Field(default=64 * KiB, ge=1)
    max_part_headers: int = Field(default=8, ge=1, le=64)
    max_part_header_size: int = Field(default=4 * KiB, ge=256, le=64 * KiB)
    # tus resumable uploads.
    tus_max_size: int | None = None  # default: max_upload_size
    tus_expire_after: float = Field(default=24 * 3600.0, gt=0)
    max_metadata_size: int = Field(default=4 * KiB, ge=64)
    # Progress events (stream ``upload:{id}``).
    progress_interval: float = Field(default=0.1, ge=0)
    progress_step: float = Field(default=0.01, ge=0, le=1)
    # Seconds an ``upload:{id}`` stream is kept once the upload ended (late followers read
    # how it ended); each holds up to a few KiB in the log until then.
    progress_ttl: float = Field(default=600.0, gt=0)

    @model_validator(mode="after")
    def _tus_limit(self) -> FilesSettings:
        if self.tus_max_size is not None and self.tus_max_size < 1:
            raise ValueError("files.tus_max_size must be at least 1 byte")
        return self

    @property
    def tus_limit(self) -> int:
        return self.max_upload_size if self.tus_max_size is None else self.tus_max_size
