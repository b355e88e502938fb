"""The ``jobs`` section of the server settings."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["JobsSettings"]


class JobsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # "local": an in-process pool (default); "redis": a Redis queue served by `mianzhang worker`
    # processes (and by this server too when `serve_locally`).
    queue: Literal["local", "redis"] = "local"
    concurrency: int = Field(default=4, ge=1, le=1024)
    max_queued: int = Field(default=1000, ge=1)
    serve_locally: bool = True
