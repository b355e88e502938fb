"""One contract for every registered surface (``SURFACES``): a new surface passes it unchanged.

* purity: the same events give the same wire events, from any fresh encoder;
* one terminal shape: ``Finished``, ``Failed`` and ``Cancelled`` each end the stream with
  their own non-empty, distinct closing events, after the same body;
* resume: read through the log reader, resuming after any wire event's id gives exactly the
  rest of a full read;
* text, reasoning and tool-call tokens all appear in the output.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from mianzhang import SSEDecoder
from mianzhang.llm import (
    SURFACES,
    Cancelled,
    Chunk,
    Failed,
    Finished,
    GenEvent,
    Started,
    Surface,
    SurfaceContext,
    Timings,
    Token,
    UpstreamProtocolError,
    Usage,
    WireEvent,
    surface_events,
)
from mianzhang.llm._canonical import StartRecord, event_entry, start_entry, start_meta
from mianzhang.log import MemoryEventLog

STARTED = Started("m", 1700000000, "demo", "a scripted model")
T = Timings(0.2, 1.0, 3)
CALL = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather"}}
ARGS_1 = {"index": 0, "function": {"arguments": '{"city": '}}
ARGS_2 = {"index": 0, "function": {"arguments": '"Paris"}'}}
BODY: list[GenEvent] = [
    STARTED,
    Token(Chunk(role="assistant"), 0.2),
    Token(Chunk(reasoning="Thinking about weather"), 0.2),
    Token(Chunk(text="Let me"), 0.3),
    Token(Chunk(text=" check."), 0.4),
    Token(Chunk(tool_calls=[CALL]), 0.5),
    Token(Chunk(tool_calls=[ARGS_1]), 0.6),
    Token(Chunk(tool_calls=[ARGS_2]), 0.7),
    Token(Chunk(finish_reason="tool_calls"), 0.8),
]
TERMINALS: dict[str, GenEvent] = {
    "finished": Finished(
        "tool_calls", Usage(5, 3), T, provider="demo", upstream_model="m", usage_reported=True
    ),
    "failed": Failed(UpstreamProtocolError("cut off"), Usage(5, 3), T, partial=True),
    "cancelled": Cancelled("stopped", Usage(5, 3), T, partial=True),
}

surfaces = pytest.mark.parametrize("surface", list(SURFACES.values()), ids=list(SURFACES))


def encode_all(surface: Surface, events: list[GenEvent]) -> list[list[WireEvent]]:
    """The wire events of each event (the closing ``end()`` with the terminal's)."""
    encoder = surface.encoder(SurfaceContext("gen-contract", "m", 1700000000))
    out = []
    for event in events:
        wire = encoder.encode(event)
        if isinstance(event, Finished | Failed | Cancelled):
            wire = wire + encoder.end()
        out.append(wire)
    return out


def strings(value: Any) -> list[str]:
    """Every string leaf of a JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def texts(wire: list[WireEvent]) -> str:
    out: list[str] = []
    for _, data in wire:
        try:
            out += strings(orjson.loads(data))
        except orjson.JSONDecodeError:
            out.append(data)
    return "\n".join(out)


@surfaces
@pytest.mark.parametrize("terminal", list(TERMINALS))
def test_an_encoder_is_a_pure_function_of_the_events(surface: Surface, terminal: str) -> None:
    events = [*BODY, TERMINALS[terminal]]
    first = encode_all(surface, events)
    assert first == encode_all(surface, events)
    assert all(
        isinstance(d, str) and (n is None or isinstance(n, str)) for w in first for n, d in w
    )


@surfaces
def test_each_end_has_one_terminal_shape_after_the_same_body(surface: Surface) -> None:
    tails = {}
    bodies = []
    for name, terminal in TERMINALS.items():
        out = encode_all(surface, [*BODY, terminal])
        bodies.append(out[:-1])
        tails[name] = out[-1]
        assert out[-1], f"{surface.name}: {name} has no closing events"
    assert all(body == bodies[0] for body in bodies)
    assert tails["finished"] != tails["failed"] != tails["cancelled"] != tails["finished"]
    seen = {event for group in bodies[0] for event in group}
    for name, tail in tails.items():  # the terminal shape only at the end, exactly once
        assert not seen & set(tail), f"{surface.name}: {name}'s closing events came earlier"
        assert len(set(tail)) == len(tail)
    without_output = encode_all(surface, [STARTED, TERMINALS["cancelled"]])
    assert without_output[-1], "a generation stopped before any output still ends"


@surfaces
def test_text_reasoning_and_tool_calls_all_appear(surface: Surface) -> None:
    out = texts([w for group in encode_all(surface, [*BODY, TERMINALS["finished"]]) for w in group])
    for piece in ("Let me", " check.", "Thinking about weather", "get_weather", '{"city": '):
        assert piece in out, f"{surface.name} lost {piece!r}"
    assert '"Paris"}' in out


async def read(log: MemoryEventLog, surface: Surface, after: str | None) -> list[Any]:
    raw = b""
    async for item in surface_events(log, "gen-contract", surface, after=after):
        raw += item if isinstance(item, bytes) else item.encode()
    return [(e.id, e.event, e.data) for e in SSEDecoder().decode(raw)]


@surfaces
@pytest.mark.parametrize("terminal", list(TERMINALS))
async def test_resuming_after_any_event_gives_the_rest_of_a_full_read(
    surface: Surface, terminal: str
) -> None:
    record = StartRecord(STARTED, "native", {})
    async with MemoryEventLog() as log:
        await log.create("gen-contract", meta=start_meta(record))
        entries = [start_entry(STARTED, "native", {})]
        entries += [event_entry(e) for e in [*BODY[1:], TERMINALS[terminal]]]
        for entry in entries:
            await log.append("gen-contract", entry.data, event=entry.event)
        await log.close("gen-contract")
        full = await read(log, surface, None)
        assert [data for _, _, data in full] == [
            d for group in encode_all(surface, [*BODY, TERMINALS[terminal]]) for _, d in group
        ]
        ids = [ident for ident, _, _ in full]
        assert len(set(ids)) == len(ids) and all(ids), "every wire event has its own id"
        for i, ident in enumerate(ids):
            assert await read(log, surface, ident) == full[i + 1 :], (surface.name, ident)
