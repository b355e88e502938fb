"""Chats kept by the server (layer 4): who owns a conversation, its messages and title, and
which generation is its running answer, in the log's backend (memory or Redis) with a TTL.

The AI SDK routes (``useChat``), the AG-UI routes and the web UI's conversations share it:
:class:`ChatStore` is the contract, :class:`MemoryChatStore` and :class:`RedisChatStore` the
implementations (one contract suite runs on both; the Redis one on every Redis URL form: one
server, a Redis Cluster, a Sentinel's master), :func:`open_chat_store` picks one from
:class:`ChatsSettings`.
"""

from .._errors import ChatConflict, ChatError, ChatNotFound
from ._model import Chat, ChatKind, ChatSummary, Turn
from ._settings import ChatsSettings
from ._setup import open_chat_store
from ._store import ChatStore, MemoryChatStore


def __getattr__(name: str) -> object:
    """The Redis store loads lazily so ``mianzhang.chats`` imports without the redis extra."""
    if name == "RedisChatStore":
        from ._redis import RedisChatStore

        return RedisChatStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Chat",
    "ChatConflict",
    "ChatError",
    "ChatKind",
    "ChatNotFound",
    "ChatStore",
    "ChatSummary",
    "ChatsSettings",
    "MemoryChatStore",
    "RedisChatStore",
    "Turn",
    "open_chat_store",
]
