"""Chats on Redis: one hash per chat, one sorted set per owner for listing.

Keys (``{...}`` is the Redis Cluster hash tag):

* ``{prefix}chat:{<chat id>}`` — a hash: ``meta`` (the chat without its messages, JSON),
  ``messages`` (JSON) and ``rev`` (its revision, one more at every write), expiring ``ttl``
  seconds after the last write (``PEXPIRE``);
* ``{prefix}chats:owner:{<owner>}`` — the owner's chat ids scored by their last update; an
  index only, in another slot than the chats (on a cluster, usually another master).

Every operation touches one key at a time, through a Lua script on that key alone
(``_redis_scripts.py``), so it runs the same on one server, a Sentinel's master and a Redis
Cluster, never ``CROSSSLOT``. A change of a chat reads it, applies the same pure function the
memory store applies (``_ops.py``) and writes it back with a compare-and-set on ``rev``,
retried when another writer got in between. The owner's index is written after the chat:
entries only move forward (``ZADD GT``), at most ``max_per_owner`` are kept, and a failed
index write is logged, not raised (the chat's own write stands; its next write lists it
again). A listing reads past index entries whose chat is gone or now has another owner, and
removes them unless they were indexed again meanwhile. Errors of the chat's own key become
:class:`~mianzhang.BackendUnavailable`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

import orjson
from redis.exceptions import RedisError

from .._errors import BackendUnavailable
from ..log.redis._connect import Client
from . import _redis_scripts as scripts
from ._model import Chat, ChatSummary, Turn
from ._ops import begin_turn, finish_turn, rename

__all__ = ["RedisChatStore"]

logger = logging.getLogger("mianzhang.chats")

_RETRIES = 16


def _meta(chat: Chat) -> bytes:
    data = chat.to_json()
    del data["messages"]
    return orjson.dumps(data)


def _decode(raw: Mapping[bytes, bytes]) -> Chat | None:
    if b"meta" not in raw:
        return None
    data = orjson.loads(raw[b"meta"])
    data["messages"] = orjson.loads(raw.get(b"messages", b"[]"))
    return Chat.from_json(data)


class RedisChatStore:
    """:class:`~mianzhang.chats.ChatStore` on Redis: one server, a Redis Cluster or a
    Sentinel's master (see the module docstring)."""

    def __init__(
        self,
        client: Client,
        *,
        prefix: str = "mz:",
        ttl: float = 30 * 86400.0,
        max_per_owner: int = 1000,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl_ms = max(1, int(ttl * 1000))
        self._max = max(1, max_per_owner)
        self._create = client.register_script(scripts.CREATE)
        self._write = client.register_script(scripts.WRITE)
        self._delete = client.register_script(scripts.DELETE)
        self._index_script = client.register_script(scripts.INDEX)
        self._prune = client.register_script(scripts.PRUNE)

    def key(self, chat_id: str) -> str:
        """The key of a chat's hash."""
        return f"{self._prefix}chat:{{{chat_id}}}"

    def index(self, owner: str) -> str:
        """The key of an owner's index."""
        return f"{self._prefix}chats:owner:{{{owner}}}"

    async def _indexed(self, chat: Chat) -> None:
        """List the chat under its owner at its last update (never moving it back); a failure
        is logged, not raised."""
        args: list[Any] = [chat.id, chat.updated, self._max, self._ttl_ms]
        try:
            await self._index_script(keys=[self.index(chat.owner)], args=args)
        except RedisError as exc:
            logger.warning("chat %r not indexed for %r: %s", chat.id, chat.owner, exc)

    async def create(self, chat: Chat) -> bool:
        args: list[Any] = [_meta(chat), orjson.dumps(chat.messages), self._ttl_ms]
        try:
            created = await self._create(keys=[self.key(chat.id)], args=args)
        except RedisError as exc:
            raise BackendUnavailable(f"redis: {exc}") from exc
        if created:
            await self._indexed(chat)
        return bool(created)

    async def get(self, chat_id: str) -> Chat | None:
        try:
            raw: dict[bytes, bytes] = cast(Any, await self._client.hgetall(self.key(chat_id)))
        except RedisError as exc:
            raise BackendUnavailable(f"redis: {exc}") from exc
        return _decode(raw)

    async def recent(self, owner: str, limit: int = 50) -> list[ChatSummary]:
        found: list[ChatSummary] = []
        start = 0
        try:
            while len(found) < limit:
                page, kept, more = await self._list_page(owner, start, limit - len(found))
                found += page
                if not more:
                    break
                start += kept  # the entries removed as gone no longer take a rank
        except RedisError as exc:
            raise BackendUnavailable(f"redis: {exc}") from exc
        return found

    async def _list_page(
        self, owner: str, start: int, count: int
    ) -> tuple[list[ChatSummary], int, bool]:
        """``count`` index entries from rank ``start``: the owner's live chats among them, how
        many entries stay in the index, and whether it may hold more. Entries pointing at no
        chat of the owner are pruned."""
        entries: list[tuple[bytes, float]] = cast(
            Any,
            await self._client.zrevrange(
                self.index(owner), start, start + count - 1, withscores=True
            ),
        )
        async with self._client.pipeline(transaction=False) as pipe:
            for chat_id, _ in entries:
                pipe.hget(self.key(chat_id.decode()), "meta")
            metas: list[bytes | None] = await pipe.execute()
        live: list[ChatSummary] = []
        gone: dict[str, float] = {}
        for (chat_id, score), meta in zip(entries, metas, strict=True):
            chat = _decode({b"meta": meta}) if meta is not None else None
            if chat is None or chat.owner != owner:
                gone[chat_id.decode()] = score
            else:
                live.append(chat.summary())
        removed = await self.prune(owner, gone) if gone else 0
        return live, len(entries) - removed, len(entries) == count

    async def prune(self, owner: str, seen: Mapping[str, float]) -> int:
        """Remove the owner's index entries ``seen`` (id: score) pointing at no chat of the
        owner, each only if its score is still the one seen. How many were removed."""
        args: list[Any] = [x for pair in seen.items() for x in pair]
        return int(await self._prune(keys=[self.index(owner)], args=args))

    async def _change(self, chat_id: str, change: Callable[[Chat], bool]) -> Chat | None:
        """Read the chat, apply ``change`` and write it back if it returned true, as a
        compare-and-set on its revision (retried when another write got in first). The chat
        as it ends up; ``None`` if unknown."""
        key = self.key(chat_id)
        try:
            for _ in range(_RETRIES):
                raw: dict[bytes, bytes] = cast(Any, await self._client.hgetall(key))
                chat = _decode(raw)
                if chat is None or not change(chat):
                    return chat
                args: list[Any] = [
                    raw.get(b"rev", b"0"),
                    _meta(chat),
                    orjson.dumps(chat.messages),
                    self._ttl_ms,
                ]
                written = await self._write(keys=[key], args=args)
                if written == 1:
                    break
                if written == -1:
                    return None
            else:
                raise BackendUnavailable(
                    f"redis: chat {chat_id!r} kept changing under {_RETRIES} tries"
                )
        except RedisError as exc:
            raise BackendUnavailable(f"redis: {exc}") from exc
        await self._indexed(chat)
        return chat

    async def update(
        self, chat_id: str, *, title: str | None = None, model: str | None = None
    ) -> Chat | None:
        def change(chat: Chat) -> bool:
            rename(chat, title=title, model=model)
            return True

        return await self._change(chat_id, change)

    async def delete(self, chat_id: str) -> bool:
        try:
            meta: bytes | None = await self._delete(keys=[self.key(chat_id)])
        except RedisError as exc:
            raise BackendUnavailable(f"redis: {exc}") from exc
        chat = _decode({b"meta": meta}) if meta is not None else None
        if chat is None:
            return False
        try:
            await self._client.zrem(self.index(chat.owner), chat_id)
        except RedisError as exc:  # a listing reads past it: the chat is gone
            logger.warning("deleted chat %r left in %r's index: %s", chat_id, chat.owner, exc)
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
        won = False

        def change(chat: Chat) -> bool:
            nonlocal won
            won = begin_turn(
                chat,
                turn,
                replaces=replaces,
                messages=messages,
                model=model,
                title=title,
                now=time.time(),
            )
            return won

        chat = await self._change(chat_id, change)
        return chat if won else None

    async def finish(
        self, chat_id: str, stream: str, message: dict[str, Any] | None
    ) -> Chat | None:
        return await self._change(
            chat_id, lambda chat: finish_turn(chat, stream, message, now=time.time())
        )
