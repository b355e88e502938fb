"""AG-UI (``@ag-ui/client``'s ``HttpAgent``, CopilotKit): runs streamed from the log, with SSE
ids on every event, resumable by id, and a stop endpoint.

=========================================  ================================================
``POST /v1/agui``                          ``RunAgentInput``: the run's AG-UI events (SSE,
                                           ``data:`` JSON, an ``id`` on each, no ``[DONE]``)
``GET /v1/agui/{threadId}/runs/{runId}``   resume the run: after ``Last-Event-ID``, or after
                                           the first ``?after=N`` events; a continuation
                                           (the run and its open parts started again, then
                                           what was missed), never a replay
``POST /v1/agui/{threadId}/stop``          stop the thread's running run on any instance
                                           (its streams end ``RUN_FINISHED`` with outcome
                                           ``cancelled``); JSON
=========================================  ================================================

Point ``new HttpAgent({url: "<server>/v1/agui"})`` here. The model is ``forwardedProps.model``,
else ``?model=``, else the server's default; ``forwardedProps.background: true`` keeps the run
going with nobody reading. A thread is a chat of kind ``agui`` in the server's chat store,
owned by its first caller (another principal: 403); its latest run is the one the resume and
stop routes address. Bad input (an invalid ``RunAgentInput``, a body over ``chats.max_body``)
is a 4xx JSON answer before any stream starts.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from ...llm._agui_input import AGUIRun, parse_run_agent_input
from ...llm._agui_resume import agui_resume_events
from ...llm._agui_surface import AGUI
from ...llm._serve import surface_response
from ...llm._types import ChatRequest
from ...log.serve import requested_after
from .._deps import Budget, Chats, Owner, Settings
from .._errors import ErrorRoute
from ._bodies import json_body

__all__ = ["agui_router"]

agui_router = APIRouter(prefix="/v1/agui", tags=["ag-ui"], route_class=ErrorRoute)


def _forwarded(run: AGUIRun, key: str) -> Any:
    props = run.forwarded_props
    return props.get(key) if isinstance(props, dict) else None


def _run_not_found(thread_id: str, run_id: str) -> JSONResponse:
    message = f"run {run_id!r} is not the latest run of thread {thread_id!r}"
    body = {"error": {"message": message, "type": "not_found", "param": None, "code": "not_found"}}
    return JSONResponse(body, status_code=404)


@agui_router.post("", name="agui:run")
async def run(
    request: Request,
    chats: Chats,
    owner: Owner,
    budget: Budget,
    settings: Settings,
    model: str | None = Query(None, min_length=1, max_length=256),
) -> Response:
    """Run the agent (one generation of the chosen model) and stream its AG-UI events."""
    parsed = parse_run_agent_input(await json_body(request, settings.chats.max_body))
    who = await budget.check(request)
    thread = await chats.open(parsed.thread_id, owner, "agui")
    chosen = _forwarded(parsed, "model")
    params = {"tools": parsed.tools} if parsed.tools else {}
    prepared = chats.llm.prepare_surface(
        "agui",
        (chosen if isinstance(chosen, str) and chosen else model) or thread.model or None,
        ChatRequest(parsed.messages, params=params),
        background=_forwarded(parsed, "background") is True,
        options={"thread_id": parsed.thread_id, "run_id": parsed.run_id},
    )

    async def charge() -> None:
        await budget.charge(who, prepared.generation.usage.total_tokens)

    await chats.start(thread, prepared, client_id=parsed.run_id, charge=charge)
    return surface_response(chats.host, prepared.stream_id, AGUI, None)


@agui_router.get("/{thread_id}/runs/{run_id}", name="agui:resume")
async def resume(
    request: Request,
    thread_id: str,
    run_id: str,
    chats: Chats,
    owner: Owner,
    after: int | None = Query(None, ge=0),
) -> Response:
    """The run's events after the client's last one (see the module docstring)."""
    thread = await chats.mine(thread_id, owner)
    turn = thread.turn
    if turn is None or turn.client_id != run_id:
        return _run_not_found(thread_id, run_id)
    host = chats.host
    if await host.log.info(turn.stream) is None:
        return _run_not_found(thread_id, run_id)
    last_id = requested_after(request)
    if last_id is not None or after:
        host.stats.resumes += 1
    count = after if last_id is None else None
    events = agui_resume_events(host.log, turn.stream, after=last_id, count=count, stats=host.stats)
    return host.response(events, {**AGUI.headers, "X-Stream-Id": turn.stream})


@agui_router.post("/{thread_id}/stop", name="agui:stop")
async def stop(thread_id: str, chats: Chats, owner: Owner) -> Response:
    """Stop the thread's running run (any instance); ``stopped`` is false if none ran."""
    thread = await chats.mine(thread_id, owner)
    stream = await chats.stop(thread)
    run_id = thread.turn.client_id if thread.turn is not None else None
    body = {"thread_id": thread_id, "run_id": run_id, "stream": stream}
    return JSONResponse({**body, "stopped": stream is not None})
