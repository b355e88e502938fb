"""A chat as the store keeps it: who owns it, its title and messages, its latest generation.

Plain data, no I/O. :class:`Chat` is what :class:`~mianzhang.chats.ChatStore` implementations
store and return (a copy each time: changing a returned chat changes nothing stored).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

__all__ = ["Chat", "ChatKind", "ChatSummary", "Turn"]

ChatKind = Literal["ui", "agui"]
"""``ui``: an AI SDK chat (messages are UIMessages); ``agui``: an AG-UI thread."""


@dataclass(frozen=True, slots=True)
class Turn:
    """A generation started in a chat: its log stream, the client's id for the turn (the AI
    SDK message id, the AG-UI run id), and until when the store counts it as running
    (unix seconds; past that instant it counts as ended whatever happened to it)."""

    stream: str
    client_id: str
    active_until: float

    def active(self, now: float | None = None) -> bool:
        return self.active_until > (time.time() if now is None else now)


@dataclass(slots=True)
class Chat:
    """One conversation. ``owner`` is the principal that created it (``kind:name``);
    ``messages`` are JSON objects as the client sent them (UIMessages for ``ui`` chats) plus
    the answers saved when their generation ended; ``turn`` the latest generation (``None``
    before the first one)."""

    id: str
    owner: str
    kind: ChatKind = "ui"
    title: str = ""
    model: str = ""
    created: float = field(default_factory=time.time)
    updated: float = 0.0
    messages: list[dict[str, Any]] = field(default_factory=list)
    turn: Turn | None = None

    def __post_init__(self) -> None:
        if not self.updated:
            self.updated = self.created

    @property
    def active_stream(self) -> str | None:
        """The stream of a generation the store counts as running, else ``None``."""
        turn = self.turn
        return turn.stream if turn is not None and turn.active() else None

    def copy(self) -> Chat:
        return replace(self, messages=copy.deepcopy(self.messages))

    def summary(self) -> ChatSummary:
        return ChatSummary(
            self.id,
            self.kind,
            self.title,
            self.model,
            self.created,
            self.updated,
            self.active_stream,
        )

    def to_json(self) -> dict[str, Any]:
        turn = self.turn
        return {
            "id": self.id,
            "owner": self.owner,
            "kind": self.kind,
            "title": self.title,
            "model": self.model,
            "created": self.created,
            "updated": self.updated,
            "messages": self.messages,
            "turn": None
            if turn is None
            else {"stream": turn.stream, "client_id": turn.client_id, "until": turn.active_until},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Chat:
        raw = data.get("turn")
        turn = None
        if isinstance(raw, dict):
            turn = Turn(str(raw["stream"]), str(raw.get("client_id", "")), float(raw["until"]))
        return cls(
            id=str(data["id"]),
            owner=str(data["owner"]),
            kind="agui" if data.get("kind") == "agui" else "ui",
            title=str(data.get("title", "")),
            model=str(data.get("model", "")),
            created=float(data["created"]),
            updated=float(data.get("updated", 0.0)),
            messages=list(data.get("messages") or []),
            turn=turn,
        )


@dataclass(frozen=True, slots=True)
class ChatSummary:
    """A chat without its messages (for lists): ``running`` is its active stream, if any."""

    id: str
    kind: ChatKind
    title: str
    model: str
    created: float
    updated: float
    running: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "title": self.title,
            "model": self.model,
            "created": self.created,
            "updated": self.updated,
            "running": self.running is not None,
            "stream": self.running,
        }
