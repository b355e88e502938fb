"""The ``tails`` section: the only files ``GET /v1/tails/{name}`` can reach (name -> path)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TailsSettings"]


class TailsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    files: dict[str, Path] = Field(default_factory=dict)
    last_lines: int = Field(default=10, ge=0, le=10_000)
    poll_interval: float = Field(default=0.25, gt=0)
    max_line_bytes: int = Field(default=64 * 1024, ge=256)
