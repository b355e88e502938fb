"""The AI SDK's chat protocol (``useChat``, ``DefaultChatTransport``, ``ai`` 7): UI message
streams served from the log, resumable on any instance, with a real stop.

=======================================  ==================================================
``POST /v1/ui/chat``                     ``DefaultChatTransport``'s body (``id``,
                                         ``messages``, ``trigger``, ``messageId``, and the
                                         app's ``model``, ``background``, ``max_tokens``,
                                         ``temperature``, ``tools``): a UI message stream
                                         (``x-vercel-ai-ui-message-stream: v1``, ``[DONE]``)
``GET /v1/ui/chat/{chatId}/stream``      the chat's running answer from its first event
                                         (``useChat({resume: true})``), after
                                         ``Last-Event-ID`` if sent (one of this answer's
                                         ids: another is ignored); 204 if none is running
``POST /v1/ui/chat/{chatId}/stop``       stop the running answer on any instance: every
                                         reader's stream ends ``abort``; JSON
=======================================  ==================================================

Point ``DefaultChatTransport({api: "<server>/v1/ui/chat"})`` here: its resume GET is
``{api}/{chatId}/stream`` already. The chat (its UIMessages, its running answer) is kept in
the server's chat store (``mianzhang.chats``) under the caller; a chat of another principal
is 403. The answer's ``messageId`` is its stream id, the same on every read, so a replay
rebuilds the message in place (``ai`` 7 resets a resumed message on its first ``start``:
``docs/ai-frontends.md``). When the generation ends, its final UIMessage is saved in the chat.

By default a generation nobody reads is stopped after ``llm.grace_period`` seconds (a reload
fits in it); ``"background": true`` in the body keeps it running to the end. Bad input
(malformed UIMessages, unknown part types, a body over ``chats.max_body``, an unknown model)
is a 4xx JSON answer before any stream starts.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from ..._errors import InvalidLLMRequest
from ...llm._reader import resume_point
from ...llm._serve import surface_response
from ...llm._types import ChatRequest
from ...llm._ui_messages import UIChat, parse_ui_chat_request
from ...llm._ui_surface import UI
from ...log import EventLog, parse_id
from ...log.serve import requested_after
from .._deps import Budget, Chats, Owner, Settings
from .._errors import ErrorRoute
from ._bodies import json_body, title_from

__all__ = ["ai_sdk_router"]

ai_sdk_router = APIRouter(prefix="/v1/ui/chat", tags=["ai-sdk"], route_class=ErrorRoute)


class ChatOptions(BaseModel):
    """The fields an app adds to the body (``DefaultChatTransport({body})``); other fields
    are left for the app."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = Field(default=None, min_length=1, max_length=256)
    background: bool = Field(default=False, strict=True)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = None
    tools: list[dict[str, Any]] | None = None


def _options(chat: UIChat) -> ChatOptions:
    try:
        return ChatOptions.model_validate(chat.extra)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"])
        raise InvalidLLMRequest(f"{param}: {first['msg']}", param=param) from None


def _request(chat: UIChat, options: ChatOptions) -> ChatRequest:
    params: dict[str, Any] = {}
    if options.temperature is not None:
        params["temperature"] = options.temperature
    if options.tools:
        params["tools"] = options.tools
    return ChatRequest(chat.messages, max_tokens=options.max_tokens, params=params)


def _first_text(chat: UIChat) -> str:
    for message in chat.ui_messages:
        if message.role == "user":
            texts = [p.get("text") for p in message.parts if p.get("type") == "text"]
            return "".join(t for t in texts if isinstance(t, str))
    return ""


@ai_sdk_router.post("", name="ai-sdk:chat")
async def chat(
    request: Request, chats: Chats, owner: Owner, budget: Budget, settings: Settings
) -> Response:
    """Start the chat's next answer and stream it as UI message chunks."""
    body = await json_body(request, settings.chats.max_body)
    parsed = parse_ui_chat_request(body)
    options = _options(parsed)
    who = await budget.check(request)
    conversation = await chats.open(parsed.chat_id, owner, "ui", model=options.model or "")
    model = options.model or conversation.model or None
    prepared = chats.llm.prepare_surface(
        "ui",
        model,
        _request(parsed, options),
        background=options.background,
        options={"chat_id": conversation.id},
    )

    async def charge() -> None:
        await budget.charge(who, prepared.generation.usage.total_tokens)

    await chats.start(
        conversation,
        prepared,
        client_id=prepared.stream_id,
        messages=body["messages"],
        title=title_from(_first_text(parsed)),
        charge=charge,
    )
    return surface_response(chats.host, prepared.stream_id, UI, None)


async def _after(log: EventLog, stream: str, after: str | None) -> str | None:
    """``after`` if it is an id of ``stream``'s current epoch; else ``None`` (a full replay:
    ``useChat`` rebuilds the message from its first chunk, where a ``reset`` event of the log
    reader would not pass its chunk schema)."""
    if after is None:
        return None
    info = await log.info(stream)
    parsed = parse_id(resume_point(after).follow_after or "")
    return after if info is not None and parsed is not None and parsed[0] == info.epoch else None


@ai_sdk_router.get("/{chat_id}/stream", name="ai-sdk:resume")
async def resume(request: Request, chat_id: str, chats: Chats, owner: Owner) -> Response:
    """The chat's running answer (a full replay, or after ``Last-Event-ID``); 204 if none."""
    conversation = await chats.get(chat_id, owner)
    stream = await chats.running(conversation) if conversation is not None else None
    if stream is None:
        return Response(status_code=204)
    after = await _after(chats.host.log, stream, requested_after(request))
    return surface_response(chats.host, stream, UI, after)


@ai_sdk_router.post("/{chat_id}/stop", name="ai-sdk:stop")
async def stop(chat_id: str, chats: Chats, owner: Owner) -> Response:
    """Stop the chat's running answer (any instance); ``stopped`` is false if none ran."""
    stream = await chats.stop(await chats.mine(chat_id, owner))
    return JSONResponse({"chat_id": chat_id, "stream": stream, "stopped": stream is not None})
