"""Where chats live: the :class:`ChatStore` protocol and its memory implementation (Redis in
``_redis.py``); ``tests/chats/contract`` runs one suite on every backend (memory, and Redis as
one server, a Redis Cluster and a Sentinel's master)."""

from __future__ import annotations

import time
from typing import Any, Protocol

from ._model import Chat, ChatSummary, Turn
from ._ops import begin_turn, finish_turn, rename

__all__ = ["ChatStore", "MemoryChatStore"]


class ChatStore(Protocol):
    """Chats shared by every instance of an app (the AI SDK and AG-UI routes, the web UI).

    Guarantees of every implementation:

    * a chat reads back as stored (JSON values exactly), and every read returns a copy;
    * ``create`` never overwrites: the first chat with an id wins, later ones get ``False``;
    * a chat is forgotten ``ttl`` seconds after its last write (every write restarts the
      clock), then reads as ``None`` and leaves its owner's list;
    * ``begin`` is a compare-and-set on the chat's turn, so two instances starting a turn of
      the same chat at once cannot both win; ``finish`` is idempotent;
    * ``recent`` gives an owner's chats, most recently active first, at most ``limit``: a
      chat is listed once ``create`` has returned ``True``, and never once ``delete`` has
      returned or the chat was forgotten (nor under its former owner once its id was
      re-created by another). Implementations may keep the listing in an index written
      apart from the chat (Redis: another cluster slot); a failed index write then leaves
      the chat unlisted or misplaced until its next write (logged, not raised: the chat's
      own write stands), and index entries of gone chats are filtered out when read;
    * every change of one chat is atomic in that chat alone: no operation spans two chats,
      or a chat and its owner's listing.
    Unknown ids are ``None``/``False``; nothing but ``create`` makes a chat."""

    async def create(self, chat: Chat) -> bool:
        """Store a new chat; ``False`` if the id is taken (nothing changed)."""
        ...

    async def get(self, chat_id: str) -> Chat | None:
        """The chat, or ``None`` if unknown or forgotten."""
        ...

    async def recent(self, owner: str, limit: int = 50) -> list[ChatSummary]:
        """Up to ``limit`` of ``owner``'s chats, most recently updated first."""
        ...

    async def update(
        self, chat_id: str, *, title: str | None = None, model: str | None = None
    ) -> Chat | None:
        """Set the title and/or model; the chat as changed, ``None`` if unknown."""
        ...

    async def delete(self, chat_id: str) -> bool:
        """Forget the chat; ``False`` if unknown."""
        ...

    async def begin(
        self,
        chat_id: str,
        turn: Turn,
        *,
        replaces: str | None,
        messages: list[dict[str, Any]] | None = None,
        model: str | None = None,
        title: str | None = None,
    ) -> Chat | None:
        """Start ``turn`` if the chat's current turn is the one of stream ``replaces``
        (``None``: no turn yet), replacing its messages with ``messages`` (if given), its
        model with ``model`` (if given) and its title with ``title`` if it has none yet. The
        chat as changed; ``None`` if unknown or if another turn was started meanwhile."""
        ...

    async def finish(
        self, chat_id: str, stream: str, message: dict[str, Any] | None
    ) -> Chat | None:
        """The generation of ``stream`` ended with ``message`` (see :func:`finish_turn`);
        the chat as it now is, ``None`` if unknown."""
        ...


class MemoryChatStore:
    """Chats in a dict (one process), bounded: beyond ``max_chats`` the least recently
    updated are dropped; each expires ``ttl`` seconds after its last write."""

    def __init__(self, *, ttl: float = 30 * 86400.0, max_chats: int = 10_000) -> None:
        self._chats: dict[str, tuple[Chat, float]] = {}  # id -> (chat, expiry)
        self._ttl = ttl
        self._max = max_chats

    def _live(self, chat_id: str) -> Chat | None:
        found = self._chats.get(chat_id)
        if found is None:
            return None
        if found[1] <= time.time():
            del self._chats[chat_id]
            return None
        return found[0]

    def _put(self, chat: Chat) -> Chat:
        """Store a copy of ``chat`` (callers' objects are never kept); return another."""
        self._chats[chat.id] = (chat.copy(), time.time() + self._ttl)
        if len(self._chats) > self._max:
            oldest = min(self._chats.values(), key=lambda item: item[0].updated)[0]
            del self._chats[oldest.id]
        return chat.copy()

    async def create(self, chat: Chat) -> bool:
        if self._live(chat.id) is not None:
            return False
        self._put(chat)
        return True

    async def get(self, chat_id: str) -> Chat | None:
        chat = self._live(chat_id)
        return None if chat is None else chat.copy()

    async def recent(self, owner: str, limit: int = 50) -> list[ChatSummary]:
        now = time.time()
        mine = [c for c, expiry in self._chats.values() if c.owner == owner and expiry > now]
        mine.sort(key=lambda c: c.updated, reverse=True)
        return [c.summary() for c in mine[: max(0, limit)]]

    async def update(
        self, chat_id: str, *, title: str | None = None, model: str | None = None
    ) -> Chat | None:
        chat = self._live(chat_id)
        if chat is None:
            return None
        rename(chat, title=title, model=model)
        return self._put(chat)

    async def delete(self, chat_id: str) -> bool:
        if self._live(chat_id) is None:
            return False
        del self._chats[chat_id]
        return True

    async def begin(
        self,
        chat_id: str,
        turn: Turn,
        *,
        replaces: str | None,
        messages: list[dict[str, Any]] | None = None,
        model: str | None = None,
        title: str | None = None,
    ) -> Chat | None:
        chat = self._live(chat_id)
        if chat is None:
            return None
        new = chat.copy()
        if not begin_turn(
            new,
            turn,
            replaces=replaces,
            messages=messages,
            model=model,
            title=title,
            now=time.time(),
        ):
            return None
        return self._put(new)

    async def finish(
        self, chat_id: str, stream: str, message: dict[str, Any] | None
    ) -> Chat | None:
        chat = self._live(chat_id)
        if chat is None:
            return None
        if finish_turn(chat, stream, message, now=time.time()):
            return self._put(chat)
        return chat.copy()
