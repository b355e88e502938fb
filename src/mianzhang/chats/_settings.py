"""The ``chats`` section of the server settings (``MIANZHANG_CHATS__*``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ChatsSettings"]


class ChatsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A chat is forgotten this long after its last change (seconds; default 30 days).
    ttl: float = Field(default=30 * 86400.0, gt=0)
    # Upper bound of a turn's life in the store: a generation whose end was never recorded
    # (its instance died) stops counting as the chat's running answer after this long. The
    # routes also read the log, so a turn that ended is seen as ended at once.
    turn_ttl: float = Field(default=3600.0, gt=0)
    # Memory store: at most this many chats (the least recently active are dropped).
    max_chats: int = Field(default=10_000, ge=1)
    # Redis store: the newest chats listed per owner.
    max_per_owner: int = Field(default=1000, ge=1)
    # Largest request body of the AI SDK and AG-UI routes (bytes): 413 beyond.
    max_body: int = Field(default=4 << 20, ge=1024)
