"""The ``channels`` section of the server settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ChannelsSettings"]


class ChannelsSettings(BaseModel):
    """``MIANZHANG_CHANNELS__*``: history kept per channel (``max_events``; ``retention``
    maps glob patterns to other limits, first match wins), how long an idempotency key is
    remembered (seconds), and the largest publish body accepted (bytes; larger is a 413)."""

    model_config = ConfigDict(extra="forbid")

    max_events: int = Field(default=1000, ge=1)  # history kept per channel
    retention: dict[str, int] = Field(default_factory=dict)  # glob pattern -> max events
    idempotency_ttl: float = Field(default=86_400.0, gt=0)
    max_publish_bytes: int = Field(default=64 * 1024, ge=64, le=16 * 1024 * 1024)
