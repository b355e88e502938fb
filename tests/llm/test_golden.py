"""What clients receive did not change when generations became canonical logs read through
surfaces: each scripted generation of ``golden/scenarios.py`` (finished, failed mid-stream
and before any output, cancelled, tool calls; OpenAI upstream chunks and built ones), read in
the surface that started it, gives exactly the SSE events (names and data, byte for byte) the
code before (commit 388df06) gave, recorded in ``golden/outputs.json`` by ``golden/record.py``.
Only the ids differ, by design (``mianzhang/llm/_reader.py``): checked here too."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from mianzhang import SSEDecoder
from mianzhang.llm import SURFACES, Gateway, ModelEntry, ModelRegistry, surface_events
from mianzhang.llm._service import PreparedStream
from mianzhang.log import MemoryEventLog, StreamState
from mianzhang.log.serve import StreamHost
from tests._support.wait import eventually

from .golden.scenarios import (
    CASES,
    REQUEST,
    SCENARIOS,
    STREAM_IDS,
    WALL_CLOCK,
    ScriptProvider,
    VirtualClock,
    case_name,
)

GOLDEN = json.loads((Path(__file__).parent / "golden" / "outputs.json").read_text())


async def run_case(scenario: str, surface: str, options: dict[str, Any]) -> list[Any]:
    clock = VirtualClock()
    provider = ScriptProvider(list(SCENARIOS[scenario]), clock)
    entry = ModelEntry("golden", provider, "golden-up", description="a golden model")
    gateway = Gateway(ModelRegistry([entry], default_model="golden"), clock=clock)
    sid = STREAM_IDS[surface]
    prepared = PreparedStream(sid, gateway.start("golden", REQUEST), surface, True, options)
    async with MemoryEventLog() as log:
        host = StreamHost(log, poll_interval=0.01)
        try:
            await log.create(sid, meta=prepared.meta())
            await host.start(sid, prepared.entries(), background=True, closing=prepared.closing)
            if scenario == "cancelled":
                async with asyncio.timeout(10):
                    await provider.blocked.wait()
                await host.cancel(sid)

            async def ended() -> bool:
                info = await log.info(sid)
                return info is not None and info.state is not StreamState.OPEN

            await eventually(ended)
            raw = b""
            async for item in surface_events(log, sid, SURFACES[surface]):
                raw += item if isinstance(item, bytes) else item.encode()
        finally:
            await host.aclose()
    return SSEDecoder().decode(raw)


@pytest.mark.parametrize(
    ("scenario", "surface", "options"),
    CASES,
    ids=[case_name(*case) for case in CASES],
)
async def test_clients_get_what_they_got_before(
    scenario: str, surface: str, options: dict[str, Any]
) -> None:
    with mock.patch("time.time", return_value=WALL_CLOCK):
        events = await run_case(scenario, surface, options)
    assert [[e.event, e.data] for e in events] == GOLDEN[case_name(scenario, surface, options)]
    # ids: unique; within a log event's group only the last has the plain log id
    ids = [e.id for e in events]
    assert len(set(ids)) == len(ids)
    for i, ident in enumerate(ids):
        plain, dot, _ = ident.partition(".")
        if dot:
            assert ids[i + 1].partition(".")[0] == plain, ids
