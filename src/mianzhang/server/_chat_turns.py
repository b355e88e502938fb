"""Chats and their generations, for the AI SDK, AG-UI and chat routes.

:class:`ChatTurns` ties the chat store (``mianzhang.chats``), the gateway and the stream host
together. Guarantees:

* **Ownership.** A chat belongs to the principal that created it; anyone else gets
  :class:`~mianzhang.Forbidden` (403) for every operation on it, before anything runs.
* **One running answer per chat.** A turn is registered in the store (compare-and-set)
  *before* its generation starts, so two instances cannot both start one; a chat whose
  answer is running refuses a new turn with 409.
* **The log is the truth.** The store's turn says which stream is the chat's latest answer;
  whether it still runs is read from the log (:meth:`ChatTurns.running`). A turn whose stream
  has ended is *settled* there and then, by whichever instance sees it first: its final
  answer (the UIMessage the stream built, for ``ui`` chats) is saved and the turn stops
  counting as running. The producer's ``on_end`` hook settles it too (then charges the
  caller's tokens), so a chat is up to date whether or not anyone is reading; settling twice
  changes nothing.
* **Stop works from any instance** (:meth:`ChatTurns.stop`): the producer is cancelled where
  it runs, every reader's stream ends with its surface's stopped shape, and the call returns
  once the log says the stream ended (bounded wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .._errors import ChatConflict, ChatNotFound, Forbidden, StreamNotFound
from ..chats import Chat, ChatKind, ChatsSettings, ChatStore, Turn
from ..llm import LLMService
from ..llm._service import PreparedStream
from ..llm._ui_fold import final_ui_message
from ..log import EventLog, StreamState
from ..log.serve import StreamHost
from ._auth import Principal

__all__ = ["ChatTurns", "owner_of", "wait_closed"]

_STOP_WAIT = 10.0

Charge = Callable[[], Awaitable[None]]


def owner_of(principal: Principal) -> str:
    """The owner name of chats ``principal`` creates (``api_key:alice``, ``jwt:sub``;
    every anonymous caller is ``anonymous:anonymous``, one owner)."""
    return f"{principal.kind}:{principal.name}"


async def wait_closed(log: EventLog, stream: str) -> None:
    """Return once ``stream`` is no longer open (or gone): a follower ends when the stream
    does."""
    info = await log.info(stream)
    if info is None or info.state is not StreamState.OPEN:
        return
    with contextlib.suppress(StreamNotFound):
        async for _ in log.follow(stream, after=info.last_id):
            pass


class ChatTurns:
    """See the module docstring."""

    def __init__(
        self, store: ChatStore, llm: LLMService, host: StreamHost, settings: ChatsSettings
    ) -> None:
        self.store = store
        self.llm = llm
        self.host = host
        self.settings = settings

    # -- chats ---------------------------------------------------------------------------------
    async def get(self, chat_id: str, owner: str) -> Chat | None:
        """The chat (settled), ``None`` if unknown; Forbidden if it is someone else's."""
        chat = await self.store.get(chat_id)
        if chat is None:
            return None
        if chat.owner != owner:
            raise Forbidden(f"chat {chat_id!r} belongs to another principal")
        await self.running(chat)
        return await self.store.get(chat_id) if chat.turn is not None else chat

    async def mine(self, chat_id: str, owner: str) -> Chat:
        """As :meth:`get`, but an unknown chat is :class:`ChatNotFound` (404)."""
        chat = await self.get(chat_id, owner)
        if chat is None:
            raise ChatNotFound(chat_id)
        return chat

    async def open(
        self, chat_id: str, owner: str, kind: ChatKind, *, model: str = "", title: str = ""
    ) -> Chat:
        """The chat, created for ``owner`` if it does not exist yet."""
        chat = await self.store.get(chat_id)
        if chat is None:
            fresh = Chat(chat_id, owner, kind, title=title, model=model)
            if await self.store.create(fresh):
                return fresh
            chat = await self.store.get(chat_id)
            if chat is None:  # created and deleted meanwhile
                raise ChatConflict(f"chat {chat_id!r} was deleted while being created")
        if chat.owner != owner:
            raise Forbidden(f"chat {chat_id!r} belongs to another principal")
        if chat.kind != kind:
            raise ChatConflict(f"chat {chat_id!r} is an {chat.kind} chat, not {kind}")
        return chat

    # -- turns ---------------------------------------------------------------------------------
    async def running(self, chat: Chat) -> str | None:
        """The stream of the chat's running answer, read from the log; a turn whose stream
        has ended (or is gone) is settled first, and ``None`` returned."""
        turn = chat.turn
        if turn is None or not turn.active():
            return None
        info = await self.host.log.info(turn.stream)
        if info is not None and info.state is StreamState.OPEN:
            return turn.stream
        await self.settle(chat.id, chat.kind, turn.stream)
        return None

    async def settle(self, chat_id: str, kind: ChatKind, stream: str) -> None:
        """Record the end of ``stream`` in the chat (its final answer for ``ui`` chats)."""
        message = await final_ui_message(self.host.log, stream) if kind == "ui" else None
        await self.store.finish(chat_id, stream, message)

    async def start(
        self,
        chat: Chat,
        prepared: PreparedStream,
        *,
        client_id: str,
        messages: list[dict[str, Any]] | None = None,
        title: str | None = None,
        charge: Charge | None = None,
    ) -> None:
        """Register ``prepared`` as the chat's turn, then start it (its end settles the
        turn, then ``charge`` runs). :class:`ChatConflict` if an answer is running or another
        turn got in first; nothing is started then."""
        if await self.running(chat) is not None:
            raise ChatConflict(f"chat {chat.id!r} has an answer running: stop it or resume it")
        replaces = chat.turn.stream if chat.turn is not None else None
        turn = Turn(prepared.stream_id, client_id, time.time() + self.settings.turn_ttl)
        model = prepared.generation.model
        begun = await self.store.begin(
            chat.id, turn, replaces=replaces, messages=messages, model=model, title=title
        )
        if begun is None:
            raise ChatConflict(f"chat {chat.id!r} started another answer meanwhile")
        stream, kind = prepared.stream_id, chat.kind

        async def on_end() -> None:
            try:
                await self.settle(chat.id, kind, stream)
            finally:
                if charge is not None:
                    await charge()

        await self.llm.start(self.host, prepared, on_end=on_end)
        # one loop turn: the producer sends the upstream request while the response is set up
        await asyncio.sleep(0)

    async def stop(self, chat: Chat) -> str | None:
        """Stop the chat's running answer on whichever instance runs it and wait until its
        stream has ended (at most 10 s); the stream stopped, ``None`` if none was running."""
        stream = await self.running(chat)
        if stream is None:
            return None
        await self.host.cancel(stream)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_STOP_WAIT):
                await wait_closed(self.host.log, stream)
        info = await self.host.log.info(stream)
        if info is None or info.state is not StreamState.OPEN:
            await self.settle(chat.id, chat.kind, stream)
        return stream

    async def delete(self, chat: Chat) -> None:
        """Stop the chat's running answer, then forget the chat."""
        await self.stop(chat)
        await self.store.delete(chat.id)
