"""The ``tails`` section: the only files ``GET /v1/tails/{name}`` can reach (name -> path)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["TailsSettings"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class TailsSettings(BaseModel):
    """``MIANZHANG_TAILS__FILES='{"app": "/var/log/app.log"}'``: names clients may ask for,
    each mapped to one file (relative paths are relative to the server's working directory).
    Clients only ever send a name; no part of a request becomes a path."""

    model_config = ConfigDict(extra="forbid")

    files: dict[str, Path] = Field(default_factory=dict)
    last_lines: int = Field(default=10, ge=0, le=10_000)
    poll_interval: float = Field(default=0.25, gt=0)
    max_line_bytes: int = Field(default=64 * 1024, ge=256)

    @field_validator("files")
    @classmethod
    def _names(cls, files: dict[str, Path]) -> dict[str, Path]:
        for name in files:
            if not _NAME.match(name):
                raise ValueError(
                    f"tail name {name!r}: use 1-100 of A-Z a-z 0-9 _ . -, "
                    "starting with a letter or digit"
                )
        return files
