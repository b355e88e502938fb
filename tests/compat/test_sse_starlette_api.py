"""sse-starlette 3.7.1's API, in process, against ``mianzhang.compat.sse_starlette``: every
public name of its three modules, the constructor's parameters (names, order, defaults), the
class constants, ``AppStatus``'s methods, argument checks, ``ensure_bytes`` and the events.
One test body for both libraries; differences go through ``expect`` (documented departures).
"""

from __future__ import annotations

import inspect
import math
from types import ModuleType
from typing import Any

import pytest
import sse_starlette
import sse_starlette.event
import sse_starlette.sse

import mianzhang.compat.sse_starlette as compat
from mianzhang import SSEEncodeError
from tests.compat._departures import expect

MODULES: dict[str, tuple[ModuleType, ModuleType, ModuleType]] = {
    "real": (sse_starlette, sse_starlette.sse, sse_starlette.event),
    "compat": (compat, compat.sse, compat.event),
}
LIBS = list(MODULES)
ALIASES = {"Content", "SyncContentStream", "AsyncContentStream", "ContentStream", "logger"}


def own_public_names(module: ModuleType) -> set[str]:
    """What 3.7.1 defines (or re-exports from itself) in ``module``, not what it imports."""
    names = set()
    for name, value in vars(module).items():
        defined_in = getattr(value, "__module__", "") or ""
        if not name.startswith("_") and (defined_in.startswith("sse_starlette") or name in ALIASES):
            names.add(name)
    return names | ({"__version__"} if hasattr(module, "__version__") else set())


@pytest.mark.parametrize("index", [0, 1, 2], ids=["sse_starlette", "sse", "event"])
def test_every_public_name_exists(index: int) -> None:
    real, ours = MODULES["real"][index], MODULES["compat"][index]
    missing = own_public_names(real) - set(dir(ours))
    assert not missing
    assert set(getattr(real, "__all__", [])) <= set(getattr(ours, "__all__", dir(ours)))


def test_the_constructor_takes_the_same_parameters_with_the_same_defaults() -> None:
    real = inspect.signature(sse_starlette.EventSourceResponse.__init__).parameters
    ours = inspect.signature(compat.EventSourceResponse.__init__).parameters
    assert list(ours)[: len(real)] == list(real)
    for name, param in real.items():
        assert ours[name].kind == param.kind, name
        if name == "send_timeout":
            default = expect("compat", peer=None, ours=30.0, departure="send-timeout")
            assert (param.default, ours[name].default) == (None, default)
        else:
            assert ours[name].default == param.default, name
    for name in list(ours)[len(real) :]:  # mianzhang's extras: keyword-only
        assert ours[name].kind is inspect.Parameter.KEYWORD_ONLY, name


@pytest.mark.parametrize("lib", LIBS)
def test_class_constants(lib: str) -> None:
    response = MODULES[lib][1].EventSourceResponse
    assert response.DEFAULT_PING_INTERVAL == 15
    assert response.DEFAULT_SEPARATOR == "\r\n"
    assert response.DEFAULT_CLEANUP_TIMEOUT == 30.0
    assert MODULES[lib][2].ServerSentEvent.DEFAULT_SEPARATOR == "\r\n"
    assert issubclass(MODULES[lib][1].SendTimeoutError, TimeoutError)
    assert issubclass(MODULES[lib][2].JSONServerSentEvent, MODULES[lib][2].ServerSentEvent)


def test_app_status_has_the_same_interface() -> None:
    real, ours = sse_starlette.sse.AppStatus, compat.sse.AppStatus
    public = {name for name in vars(real) if not name.startswith("_")}
    assert public <= set(dir(ours)) | {"should_exit"}
    assert ours.should_exit is False and ours.enable_automatic_graceful_drain is True
    for name in ("handle_exit", "disable_automatic_graceful_drain"):
        assert callable(getattr(ours, name))


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"sep": "\t"}, ValueError),
        ({"sep": "\n\n"}, ValueError),
        ({"shutdown_grace_period": -1}, ValueError),
        ({"cleanup_timeout": -0.1}, ValueError),
        ({"ping": -1}, ValueError),
        ({"ping": "5"}, TypeError),
    ],
)
def test_bad_arguments_are_refused_alike(lib: str, kwargs: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        MODULES[lib][1].EventSourceResponse([], **kwargs)


@pytest.mark.parametrize("lib", LIBS)
def test_ping_interval_property_and_compression(lib: str) -> None:
    response = MODULES[lib][1].EventSourceResponse([], ping=0)
    assert response.ping_interval == 0
    response.ping_interval = 2.5
    assert response.ping_interval == 2.5
    with pytest.raises(ValueError):
        response.ping_interval = -1
    with pytest.raises(TypeError):
        response.ping_interval = "1"  # type: ignore[assignment]
    with pytest.raises(NotImplementedError):
        response.enable_compression()
    assert response.sep == "\r\n"
    assert MODULES[lib][1].EventSourceResponse([], sep="\n").sep == "\n"


ITEMS: list[Any] = [
    "text",
    "two\nlines",
    b"data: raw\n\n",
    memoryview(b"data: view\n\n"),
    {"data": "d", "event": "e", "id": "1", "retry": 10, "comment": "c"},
    {"data": "d", "sep": "\r"},  # the response's sep wins, in both
    7,
    None,
]


@pytest.mark.parametrize("sep", ["\r\n", "\n", "\r"])
def test_ensure_bytes_gives_the_same_bytes(sep: str) -> None:
    for item in ITEMS:
        assert compat.event.ensure_bytes(item, sep) == sse_starlette.event.ensure_bytes(item, sep)


def test_events_encode_alike() -> None:
    for mod_event in (sse_starlette.event, compat.event):
        assert mod_event.ServerSentEvent("x", event="e", id="3").encode() == (
            b"id: 3\r\nevent: e\r\ndata: x\r\n\r\n"
        )
        assert mod_event.JSONServerSentEvent({"a": [1, "é"]}, sep="\n").encode() == (
            'data: {"a":[1,"é"]}\n\n'.encode()
        )


@pytest.mark.parametrize("lib", LIBS)
def test_fields_that_would_change_meaning_on_the_wire(lib: str) -> None:
    event = MODULES[lib][2]
    if expect(lib, peer=True, ours=False, departure="event-fields"):
        assert event.ServerSentEvent("x", event="a\nb").encode() == b"event: ab\r\ndata: x\r\n\r\n"
        with pytest.raises(TypeError):
            event.ServerSentEvent("x", retry="5").encode()
        assert event.ServerSentEvent({"k": 1}).encode() == b"data: {'k': 1}\r\n\r\n"
        with pytest.raises(ValueError):
            event.JSONServerSentEvent(math.nan)
    else:
        with pytest.raises(SSEEncodeError):
            event.ServerSentEvent("x", event="a\nb")
        with pytest.raises(SSEEncodeError):
            event.ServerSentEvent("x", retry="5")
        assert event.ServerSentEvent({"k": 1}).encode() == b'data: {"k":1}\r\n\r\n'
        assert event.JSONServerSentEvent(math.nan).encode() == b"data: null\r\n\r\n"
