"""The app's chat store from its settings: in memory, or on the Redis the log uses."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from ._settings import ChatsSettings
from ._store import ChatStore, MemoryChatStore

__all__ = ["open_chat_store"]


@contextlib.asynccontextmanager
async def open_chat_store(
    settings: ChatsSettings, *, redis_url: str | None = None, prefix: str = "mz:"
) -> AsyncIterator[ChatStore]:
    """A :class:`MemoryChatStore`, or a :class:`~mianzhang.chats.RedisChatStore` on
    ``redis_url`` (any form ``mianzhang.log.redis._connect`` takes: one server, a Redis
    Cluster, a Sentinel's master); its connections are closed on exit."""
    if redis_url is None:
        yield MemoryChatStore(ttl=settings.ttl, max_chats=settings.max_chats)
        return
    from ..log.redis._connect import close, connect
    from ._redis import RedisChatStore

    client = connect(redis_url, decode_responses=False, client_name="mz-chats")
    try:
        yield RedisChatStore(
            client, prefix=prefix, ttl=settings.ttl, max_per_owner=settings.max_per_owner
        )
    finally:
        await close(client)
