"""Calling the server's ``send`` without paying for a suspension that does not happen.

An ASGI server's ``send`` almost never suspends: uvicorn's writes to its transport and returns,
and waits only while the transport is paused (the peer reads slower than we write). So the
engine runs a send's first step at once (:func:`start_send`) and only when that step
suspends does it hand the rest to :func:`finish_send`, the one place a send can wait, and the
only place the send timeout has to be armed (no timer per send, measured 4.7-5.0 µs each:
``bench/results/fanout-analysis.md`` §4.1).

:func:`start_send` is also what lets a live source hand bytes to an idle stream from outside
its task (``_sender.Sender.deliver``): the first step runs in the stream's own context, with
the stream's request task as the current task, exactly as if that task had made the call;
what is left of a send that suspended is then finished by that task.

Guarantees: a send's coroutine is stepped exactly as a task would step it (the value a step
suspends on is awaited, and what that await raises, our own cancellation included, is thrown
into the send at its suspension point); :func:`finish_send` returns once the send returned or
raises what it raised. A send that is not a coroutine (any other awaitable) is awaited as is.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Coroutine
from types import CoroutineType
from typing import Any

from starlette.types import Message, Send

__all__ = ["Pending", "finish_send", "start_send", "start_send_as"]

try:  # the C accelerated versions where they exist (CPython 3.11-3.13)
    from _asyncio import _enter_task, _leave_task
except ImportError:  # pragma: no cover - other interpreters
    from asyncio.tasks import _enter_task, _leave_task


class Pending:
    """A send whose first step suspended: its coroutine and what it suspended on (a future,
    or ``None`` for a bare yield), or an awaitable that is not a coroutine."""

    __slots__ = ("awaitable", "waiting")

    def __init__(self, awaitable: Awaitable[Any], waiting: Any) -> None:
        self.awaitable = awaitable
        self.waiting = waiting

    def close(self) -> None:
        """Abandon the send (the stream is over): its ``finally`` blocks run now."""
        close = getattr(self.awaitable, "close", None)
        if close is not None:
            close()


def start_send(send: Send, message: Message) -> Pending | None:
    """Call ``send(message)`` and run its first step: ``None`` if the send is complete, else
    the :class:`Pending` rest. What the step raises propagates."""
    awaitable = send(message)
    if type(awaitable) is not CoroutineType:
        return Pending(awaitable, None)
    try:
        waiting = awaitable.send(None)
    except StopIteration:
        return None
    return Pending(awaitable, waiting)


def start_send_as(
    send: Send,
    message: Message,
    loop: asyncio.AbstractEventLoop,
    task: asyncio.Task[Any],
    context: contextvars.Context,
) -> Pending | None:
    """:func:`start_send` from a loop callback, as a step of ``task`` (of ``loop``) in
    ``context``: code in the send that asks for the current task or reads context variables
    sees the stream's request task and its variables."""
    try:
        _enter_task(loop, task)
    except RuntimeError:  # called from inside a task after all: run it as a step of that one
        return context.run(start_send, send, message)
    try:
        return context.run(start_send, send, message)
    finally:
        _leave_task(loop, task)


async def finish_send(pending: Pending) -> None:
    """Run the rest of a send that suspended, until it returns (see the module docstring)."""
    awaitable = pending.awaitable
    if type(awaitable) is not CoroutineType:
        await awaitable
        return
    coroutine: Coroutine[Any, Any, Any] = awaitable
    waiting = pending.waiting
    while True:
        try:
            if waiting is None:
                await asyncio.sleep(0)  # the send yielded bare: give the loop one turn
            else:
                # taken over as a task takes a future its coroutine yields: no longer
                # "blocking" (else awaiting it again is refused)
                waiting._asyncio_future_blocking = False
                await waiting
        except BaseException as exc:  # handed to the send at its suspension, as a task would
            try:
                waiting = coroutine.throw(exc)
            except StopIteration:
                return
            continue
        try:
            waiting = coroutine.send(None)
        except StopIteration:
            return
