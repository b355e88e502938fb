"""The caller's chats kept by the server (``mianzhang.chats``): what the web UI's conversation
list, rename and delete use, and how an AI SDK app loads a chat's saved messages.

================================  ========================================================
``GET /v1/chats``                  the caller's chats, most recently active first
                                   (``?limit=``, at most 200): ``{"data": [...]}``
``POST /v1/chats``                 a new chat (``{"id"?, "title"?, "model"?}``): 201
``GET /v1/chats/{id}``             the chat with its messages (UIMessages) and its
                                   running answer's stream, if any
``PATCH /v1/chats/{id}``           rename it, or change its model
``DELETE /v1/chats/{id}``          stop its running answer, forget it: 204
================================  ========================================================

A chat belongs to the principal that created it (any anonymous caller when auth is off);
another principal gets 403, an unknown id 404, both as JSON.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from ..._errors import ChatConflict, ChatNotFound, InvalidLLMRequest
from ...chats import Chat
from .._deps import Chats, Owner
from .._errors import ErrorRoute
from ._bodies import json_body

__all__ = ["chat_json", "chats_router"]

_MAX_BODY = 64 * 1024
_ID = r"^[A-Za-z0-9._:-]{1,128}$"

chats_router = APIRouter(prefix="/v1/chats", tags=["chats"], route_class=ErrorRoute)


class NewChat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, pattern=_ID)
    title: str = Field(default="", max_length=200)
    model: str = Field(default="", max_length=256)


class ChatChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=200)
    model: str | None = Field(default=None, min_length=1, max_length=256)


def chat_json(chat: Chat, running: str | None) -> dict[str, Any]:
    """A chat as the API shows it (``running``: its answer's stream while it runs)."""
    turn = chat.turn
    return {
        "id": chat.id,
        "kind": chat.kind,
        "title": chat.title,
        "model": chat.model,
        "created": chat.created,
        "updated": chat.updated,
        "messages": chat.messages,
        "running": running is not None,
        "stream": running,
        "last_stream": turn.stream if turn is not None else None,
    }


def _parsed(model: type[Any], body: Any) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidLLMRequest(f"{param}: {first['msg']}", param=param) from None


@chats_router.get("", name="chats:list")
async def list_chats(chats: Chats, owner: Owner, limit: int = Query(50, ge=1, le=200)) -> Response:
    """The caller's chats, most recently active first."""
    found = await chats.store.recent(owner, limit)
    return JSONResponse({"data": [c.to_json() for c in found]})


@chats_router.post("", name="chats:create", status_code=201)
async def create_chat(request: Request, chats: Chats, owner: Owner) -> Response:
    """A new, empty chat of the caller."""
    body: NewChat = _parsed(NewChat, await json_body(request, _MAX_BODY))
    chat = Chat(body.id or "c_" + secrets.token_hex(8), owner, title=body.title, model=body.model)
    if not await chats.store.create(chat):
        raise ChatConflict(f"a chat with id {chat.id!r} exists")
    return JSONResponse(chat_json(chat, None), status_code=201)


@chats_router.get("/{chat_id}", name="chats:read")
async def read_chat(chat_id: str, chats: Chats, owner: Owner) -> Response:
    """The chat, its messages and its running answer's stream."""
    chat = await chats.mine(chat_id, owner)
    return JSONResponse(chat_json(chat, await chats.running(chat)))


@chats_router.patch("/{chat_id}", name="chats:update")
async def update_chat(request: Request, chat_id: str, chats: Chats, owner: Owner) -> Response:
    """Rename the chat, or change its model."""
    change: ChatChange = _parsed(ChatChange, await json_body(request, _MAX_BODY))
    await chats.mine(chat_id, owner)
    title = change.title.strip() if change.title is not None else None
    chat = await chats.store.update(chat_id, title=title or None, model=change.model)
    if chat is None:
        raise ChatNotFound(chat_id)
    return JSONResponse(chat_json(chat, await chats.running(chat)))


@chats_router.delete("/{chat_id}", name="chats:delete", status_code=204)
async def delete_chat(chat_id: str, chats: Chats, owner: Owner) -> Response:
    """Stop the chat's running answer, then forget the chat."""
    await chats.delete(await chats.mine(chat_id, owner))
    return Response(status_code=204)
