"""The ``channels`` section of the server settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ChannelsSettings"]


class ChannelsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_events: int = Field(default=1000, ge=1)  # history kept per channel
    retention: dict[str, int] = Field(default_factory=dict)  # glob pattern -> max events
    idempotency_ttl: float = Field(default=86_400.0, gt=0)
