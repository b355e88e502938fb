"""``AppStatus`` of sse-starlette 3.7.1, driving mianzhang's :class:`StreamSupervisor` instead
of patching uvicorn.

sse-starlette replaces ``uvicorn.Server.handle_exit`` when it is imported and polls a flag in a
watcher task per event loop. Here nothing is patched and nothing polls:

* ``AppStatus.should_exit = True`` drains, at once, every supervisor a compat stream has used
  (one per event loop owned by ``AppStatus``, plus any the app published through
  ``StreamSupervisor.lifespan``): each live stream, and each one opened while the flag stays
  set, gets its ``shutdown_event`` set, its grace, a ``retry:`` hint and a clean end.
  ``AppStatus.should_exit = False`` serves new streams normally again (it resets the same
  supervisors).
* Automatic graceful drain: the first compat stream served in the main thread chains a
  SIGTERM/SIGINT handler in front of the one installed (uvicorn's). On the signal it sets
  ``should_exit`` (unless ``disable_automatic_graceful_drain()`` was called), then calls that
  handler, so uvicorn's graceful shutdown finds the streams ending instead of waiting for them.
  uvicorn restores its own handlers when it stops, which removes the chain with them.

``AppStatus`` is process-wide, as in sse-starlette: its flag, the supervisors it knows (held
weakly: they go with their event loops) and the handlers the signal chain displaced are
mianzhang's one piece of module state, kept because the API it mirrors is a class-level flag
and signal handlers are per process.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Any, ClassVar

from ..._responses import StreamSupervisor

__all__ = ["AppStatus"]

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _AppStatusType(type):
    """Makes ``AppStatus.should_exit`` a class-level property: assigning it drains or resets."""

    _should_exit: bool

    @property
    def should_exit(cls) -> bool:
        """True once shutdown began (a signal, or set by the application)."""
        return cls._should_exit

    @should_exit.setter
    def should_exit(cls, value: bool) -> None:
        cls._should_exit = bool(value)
        if value:
            _Registry.drain_all()
        else:
            _Registry.reset_all()


class AppStatus(metaclass=_AppStatusType):
    """sse-starlette's shutdown flag (class attributes and static methods, never instantiated).

    ``should_exit``: set it to end every compat stream gracefully; reset it to serve again.
    ``enable_automatic_graceful_drain``: whether SIGTERM/SIGINT set ``should_exit``.
    ``original_handler``: kept for compatibility; mianzhang never patches uvicorn, so it stays
    ``None`` unless the application sets it (``handle_exit`` then calls it).
    """

    _should_exit: ClassVar[bool] = False
    enable_automatic_graceful_drain: ClassVar[bool] = True
    original_handler: ClassVar[Callable[..., Any] | None] = None

    @staticmethod
    def disable_automatic_graceful_drain() -> None:
        """Signals no longer end the streams: set ``AppStatus.should_exit = True`` yourself
        during shutdown, or uvicorn waits for them (up to ``--timeout-graceful-shutdown``)."""
        AppStatus.enable_automatic_graceful_drain = False

    @staticmethod
    def enable_automatic_graceful_drain_mode() -> None:
        """Undo :meth:`disable_automatic_graceful_drain`: signals end the streams again."""
        AppStatus.enable_automatic_graceful_drain = True

    @staticmethod
    def handle_exit(*args: Any, **kwargs: Any) -> None:
        """Begin shutdown as sse-starlette's patched ``handle_exit`` does: set ``should_exit``
        (if the automatic drain is on), then call ``original_handler`` if one is set."""
        if AppStatus.enable_automatic_graceful_drain:
            AppStatus.should_exit = True
        if AppStatus.original_handler is not None:
            AppStatus.original_handler(*args, **kwargs)

    @staticmethod
    def supervisor_for(published: StreamSupervisor | None) -> StreamSupervisor:
        """The supervisor of a compat stream about to start in this event loop: ``published``
        (the response's own, or the app's lifespan one) if any, else ``AppStatus``'s for this
        loop. It is drained now if ``should_exit`` is set; the signal chain is installed."""
        supervisor = _Registry.adopt(published)
        _SignalChain.ensure()
        return supervisor


class _Registry:
    """The supervisors compat streams used: those ``AppStatus`` owns (one per event loop) and
    the ones apps published. Weak: a loop closed or an app gone takes its supervisor along."""

    owned: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, StreamSupervisor]] = (
        weakref.WeakKeyDictionary()
    )
    used: ClassVar[weakref.WeakSet[StreamSupervisor]] = weakref.WeakSet()

    @classmethod
    def adopt(cls, published: StreamSupervisor | None) -> StreamSupervisor:
        supervisor = published
        if supervisor is None:
            loop = asyncio.get_running_loop()
            supervisor = cls.owned.get(loop)
            if supervisor is None:
                supervisor = cls.owned[loop] = StreamSupervisor(hook_signals=False)
        if supervisor not in cls.used:
            cls.used.add(supervisor)
        if AppStatus._should_exit and not supervisor.draining:
            supervisor.drain()
        return supervisor

    @classmethod
    def drain_all(cls) -> None:
        for supervisor in list(cls.used):
            supervisor.drain()  # thread- and signal-safe

    @classmethod
    def reset_all(cls) -> None:
        for supervisor in list(cls.used):
            supervisor.reset()


class _SignalChain:
    """SIGTERM/SIGINT: set ``should_exit`` (automatic drain), then the handler it replaced.

    A handler installed after the chain may call it in turn (``StreamSupervisor``'s hook
    does); the chain then goes back in front of that one. Each handler it displaced is kept,
    in order, and each call of the chain from within the chain calls the next older one, so
    every handler runs once per signal and none calls the chain back forever.
    """

    displaced: ClassVar[dict[int, list[Any]]] = {}
    depth: ClassVar[dict[int, int]] = {}
    limit: ClassVar[int] = 16  # handlers kept per signal (servers restarted in one process)

    @classmethod
    def ensure(cls) -> None:
        """Install the chain in front of the current handlers (main thread only: Python
        delivers signals there); a no-op while it is in front."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in _SIGNALS:
            current = signal.getsignal(signum)
            if current is not _on_signal:
                stack = cls.displaced.setdefault(signum, [])
                stack.append(current)
                del stack[: -cls.limit]
                signal.signal(signum, _on_signal)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    depth = _SignalChain.depth.get(signum, 0)
    if depth == 0 and AppStatus.enable_automatic_graceful_drain:
        AppStatus.should_exit = True
    stack = _SignalChain.displaced.get(signum, [])
    if depth >= len(stack):
        return
    before = stack[-1 - depth]
    _SignalChain.depth[signum] = depth + 1
    try:
        if callable(before):
            before(signum, frame)
        elif before == signal.SIG_DFL and depth == 0:  # nobody else handles it: die as usual
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
    finally:
        _SignalChain.depth[signum] = depth
