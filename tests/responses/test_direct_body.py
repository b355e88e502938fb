"""Direct body writes (``_transport.direct_body``, ``DirectBody``, the server protocol's
``write_body``): allowed only when the response's ``send`` reaches the server's own through
wrappers that declare they pass bodies unchanged; the wrappers are told of the bytes; the
protocol writes only what uvicorn's ``send`` would write at once, framed as it frames it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from starlette.types import Message

from mianzhang._responses._transport import TRANSPORT_EXTENSION, DirectBody, direct_body
from mianzhang.server._http_protocol import _Guarded
from tests._support.asgi import http_scope


class Cycle:
    """uvicorn's ``RequestResponseCycle`` as ``write_body`` reads it."""

    def __init__(self) -> None:
        self.disconnected = False
        self.response_started = True
        self.response_complete = False
        self.chunked_encoding: bool | None = True

    async def send(self, message: Message) -> None: ...


class Writer:
    """A server's body writer: the current response is ``cycle``."""

    def __init__(self, accept: bool = True) -> None:
        self.cycle = Cycle()
        self.accept = accept
        self.written: list[bytes] = []

    def body_target(self, send: Any) -> object | None:
        return self.cycle if send == self.cycle.send else None

    def write_body(self, target: object, data: bytes) -> bool:
        if not self.accept or target is not self.cycle:
            return False
        self.written.append(data)
        return True


class Transport:
    def __init__(self, writer: Writer) -> None:
        self.body_writer = writer

    def body_target(self, send: Any) -> object | None:
        return self.body_writer.body_target(send)


class Passing:
    """A wrapper that declares it passes bodies unchanged, counting them."""

    def __init__(self, inner: Any) -> None:
        self.passthrough_send = inner
        self.counted = 0

    async def send(self, message: Message) -> None:
        await self.passthrough_send(message)

    def body_written(self, size: int) -> None:
        self.counted += size


def scope_with(transport: object) -> dict[str, Any]:
    return http_scope(extensions={TRANSPORT_EXTENSION: {"transport": transport}})


def test_the_servers_own_send_gets_a_direct_writer() -> None:
    writer = Writer()
    direct = direct_body(scope_with(Transport(writer)), writer.cycle.send)
    assert isinstance(direct, DirectBody)
    assert direct.write(b"data: x\n\n")
    assert writer.written == [b"data: x\n\n"]


def test_declared_wrappers_are_crossed_and_told_of_the_bytes() -> None:
    writer = Writer()
    inner = Passing(writer.cycle.send)
    outer = Passing(inner.send)
    direct = direct_body(scope_with(Transport(writer)), outer.send)
    assert direct is not None
    assert direct.write(b"12345")
    assert (inner.counted, outer.counted) == (5, 5)


def test_an_undeclared_wrapper_keeps_the_asgi_path() -> None:
    """A closure (any middleware we cannot vouch for: it might compress or rewrite bodies)
    between the response and the server: no direct writes."""
    writer = Writer()

    async def rewriting(message: Message) -> None:
        await writer.cycle.send({**message, "body": message.get("body", b"").upper()})

    assert direct_body(scope_with(Transport(writer)), rewriting) is None
    assert direct_body(scope_with(Transport(writer)), Passing(rewriting).send) is None


def test_no_direct_writer_without_the_servers_offer() -> None:
    writer = Writer()
    assert direct_body(http_scope(), writer.cycle.send) is None  # no extension
    no_method = SimpleNamespace()  # a transport without body_target
    assert direct_body(scope_with(no_method), writer.cycle.send) is None
    another = Writer()  # not the connection's current response
    assert direct_body(scope_with(Transport(writer)), another.cycle.send) is None


def test_a_refused_or_empty_write_tells_nobody() -> None:
    writer = Writer(accept=False)
    wrapper = Passing(writer.cycle.send)
    direct = direct_body(scope_with(Transport(writer)), wrapper.send)
    assert direct is not None
    assert not direct.write(b"abc")
    writer.accept = True
    assert not direct.write(b"")  # an empty chunk would end a chunked body: never direct
    assert writer.written == [] and wrapper.counted == 0


# -- the server protocol's write_body -------------------------------------------------------
class FakeSocket:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False

    def is_closing(self) -> bool:
        return self.closing

    def write(self, data: bytes) -> None:
        self.writes.append(data)


def protocol(cycle: Cycle, paused: bool = False) -> Any:
    return SimpleNamespace(
        cycle=cycle, flow=SimpleNamespace(write_paused=paused), transport=FakeSocket()
    )


def test_the_protocol_frames_a_chunk_as_uvicorn_does() -> None:
    cycle = Cycle()
    proto = protocol(cycle)
    assert _Guarded.write_body(proto, cycle, b"data: 1\n\n")
    assert proto.transport.writes == [b"9\r\ndata: 1\n\n\r\n"]


@pytest.mark.parametrize(
    "state",
    [
        "paused",
        "disconnected",
        "closing",
        "not started",
        "complete",
        "not chunked",
        "HEAD",
        "not current",
    ],
)
def test_the_protocol_writes_only_what_send_would_write_at_once(state: str) -> None:
    cycle = Cycle()
    proto = protocol(cycle, paused=state == "paused")
    cycle.disconnected = state == "disconnected"
    proto.transport.closing = state == "closing"  # aborted by a cut, loss not yet reported
    cycle.response_started = state != "not started"
    cycle.response_complete = state == "complete"
    if state == "not chunked":
        cycle.chunked_encoding = False  # a Content-Length body
    if state == "HEAD":
        cycle.chunked_encoding = None  # uvicorn's HEAD answer: no body framing
    target = Cycle() if state == "not current" else cycle
    assert not _Guarded.write_body(proto, target, b"x")
    assert proto.transport.writes == []


def test_the_protocol_knows_its_current_responses_send() -> None:
    cycle = Cycle()
    proto = protocol(cycle)
    assert _Guarded.body_target(proto, cycle.send) is cycle
    assert _Guarded.body_target(proto, Cycle().send) is None
    assert _Guarded.body_target(protocol(None), cycle.send) is None  # type: ignore[arg-type]
