"""The ``jobs`` section of the server settings (``MIANZHANG_JOBS__*``)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["JobsSettings"]

_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class JobsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # "local": an in-process pool (default); "redis": a Redis queue served by `mianzhang worker`
    # processes (and by this server too when `serve_locally`). "redis" needs the Redis log
    # (MIANZHANG_LOG_BACKEND=redis): job progress is written where every instance reads it.
    queue: Literal["local", "redis"] = "local"
    # Jobs run at once by this process (the server's pool, or each `mianzhang worker`).
    concurrency: int = Field(default=4, ge=1, le=1024)
    # Jobs waiting (local) or waiting + running (redis) before submissions get 503.
    max_queued: int = Field(default=1000, ge=1)
    serve_locally: bool = True
    # Redis: a job whose worker stopped refreshing its claim for this long (SIGKILL, lost
    # host) is run again by another worker. Heartbeats go out every third of it.
    visibility_timeout: float = Field(default=30.0, gt=0)
    # Records and event streams of finished jobs are kept this long (seconds).
    keep_finished: float = Field(default=3600.0, gt=0)
    # How often a running job checks whether someone asked to cancel it (seconds).
    cancel_poll: float = Field(default=0.5, gt=0)
    # More job types, as "package.module:registry" (a JobRegistry), loaded by the server and
    # by `mianzhang worker` alike, so both know the same types.
    include: list[str] = Field(default_factory=list)

    @field_validator("include")
    @classmethod
    def _check_include(cls, value: list[str]) -> list[str]:
        for item in value:
            if not _IMPORT_PATH.match(item):
                raise ValueError(f"{item!r} is not 'package.module:attribute'")
        return value
