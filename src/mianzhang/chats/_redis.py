"""Chats on Redis: one hash per chat, one sorted set per owner for listing.

Keys (``{...}`` is the Redis Cluster hash tag: every key of one chat is in one slot):

* ``{prefix}chat:{<chat id>}`` — a hash: ``meta`` (the chat without its messages, JSON) and
  ``messages`` (JSON), expiring ``ttl`` seconds after the last write (``PEXPIRE``);
* ``{prefix}chats:owner:{<owner>}`` — the owner's chat ids scored by their last update; an
  index only: ids whose chat expired or was deleted are dropped when met (a listing reads on past
  them), only the newest ``max_per_owner`` are kept, and the set itself expires ``ttl``
  after the owner's last write.

Every change of a chat reads it, applies the same pure function the memory store applies
(``_ops.py``) and writes it back in one optimistic transaction (``WATCH``/``MULTI``), retried
when another writer got in between; the owner's index is another slot, updated after it.
redis-py errors become :class:`~mianzhang.BackendUnavailable`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError, WatchError

from .._errors import BackendUnavailable
from ._model import Chat, ChatSummary, Turn
from ._ops import begin_turn, finish_turn, rename

__all__ = ["RedisChatStore"]

_RETRIES = 16

# KEYS[1] chat hash; ARGV[1] meta, ARGV[2] messages, ARGV[3] ttl ms. 0 if the id is taken.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'meta', ARGV[1], 'messages', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


def _meta(chat: Chat) -> bytes:
    data = chat.to_json()
    del data["messages"]
    return orjson.dumps(data)


def _decode(raw: dict[bytes, bytes]) -> Chat | None:
    if b"meta" not in raw:
        return None
    data = orjson.loads(raw[b"meta"])
    data["messages"] = orjson.loads(raw.get(b"messages", b"[]"))
    return Chat.from_json(data)


class RedisChatStore:
    """:class:`~mianzhang.chats.ChatStore` on Redis (see the module docstring)."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "mz:",
        ttl: float = 30 * 86400.0,
        max_per_owner: int = 1000,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl_ms = max(1, int(ttl * 1000))
        self._ttl = ttl
        self._max = max(1, max_per_owner)
        self._create = client.register_script(_CREATE)

    def _key(self, chat_id: str) -> str:
        return f"{self._prefix}chat:{{{chat_id}}}"

    def _index(self, owner: str) -> str:
        return f"{self._prefix}chats:owner:{{{owner}}}"

    async def _indexed(self, chat: Chat) -> None:
        index = self._index(chat.owner)
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.zadd(index, {chat.id: chat.updated})
            pipe.zremrangebyrank(index, 0, -self._max - 1)
            pipe.pexpire(index, self._ttl_ms)
            await pipe.execute()

    async def create(self, chat: Chat) -> bool:
        try:
            args: list[bytes | int] = [_meta(chat), orjson.dumps(chat.messages), self._ttl_ms]
            created = await self._create(keys=[self._key(chat.id)], args=args)
            if created:
                await self._indexed(chat)
        except RedisError as exc:
            raise BackendUnavailable(f"redis: {exc}") from exc
        return bool(created)

    async def get(self, chat_id: str) -> Chat | None:
        try:
            raw: dict[bytes, bytes] = cast(Any, await self._client.hgetall(self._key(chat_id)))
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
        """``count`` index entries from rank ``start``: the live chats among them, how many
        entries stay in the index, and whether it may hold more. Entries whose chat is gone
        are removed."""
        index = self._index(owner)
        ids: list[bytes] = cast(Any, await self._client.zrevrange(index, start, start + count - 1))
        async with self._client.pipeline(transaction=False) as pipe:
            for chat_id in ids:
                pipe.hget(self._key(chat_id.decode()), "meta")
            metas: list[bytes | None] = await pipe.execute()
        gone = [chat_id for chat_id, meta in zip(ids, metas, strict=True) if meta is None]
        if gone:
            await self._client.zrem(index, *gone)
        chats = [_decode({b"meta": meta}) for meta in metas if meta is not None]
        live = [c.summary() for c in chats if c is not None and c.owner == owner]
        return live, len(ids) - len(gone), len(ids) == count

    async def _change(self, chat_id: str, change: Callable[[Chat], bool]) -> Chat | None:
        """Read the chat, apply ``change`` and write it back if it returned true, in one
        optimistic transaction (retried on a concurrent write). The chat as it ends up;
        ``None`` if unknown."""
        key = self._key(chat_id)
        try:
            for _ in range(_RETRIES):
                try:
                    return await self._change_once(key, change)
                except WatchError:
                    continue
        except RedisError as exc:
            raise BackendUnavailable(f"redis: {exc}") from exc
        raise BackendUnavailable(f"redis: chat {chat_id!r} kept changing under {_RETRIES} tries")

    async def _change_once(self, key: str, change: Callable[[Chat], bool]) -> Chat | None:
        async with self._client.pipeline(transaction=True) as pipe:
            await pipe.watch(key)
            chat = _decode(cast(Any, await pipe.hgetall(key)))
            if chat is None or not change(chat):
                await pipe.unwatch()  # type: ignore[no-untyped-call]
                return chat
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.hset(key, mapping={"meta": _meta(chat), "messages": orjson.dumps(chat.messages)})
            pipe.pexpire(key, self._ttl_ms)
            await pipe.execute()
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
        chat = await self.get(chat_id)
        try:
            deleted = await self._client.delete(self._key(chat_id))
            if chat is not None:
                await self._client.zrem(self._index(chat.owner), chat_id)
        except RedisError as exc:
            raise BackendUnavailable(f"redis: {exc}") from exc
        return bool(deleted)

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
