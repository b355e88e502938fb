"""Record ``outputs.json`` from the code BEFORE canonical logs (commit 388df06).

Run with that commit's package first on the path and this repository for the scenarios::

    git archive 388df06 | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old/src:. python tests/llm/golden/record.py

For each case of ``scenarios.CASES`` the old pipeline ran: the gateway, the wire format written
to the log by the producer (``LLMService.producer``), the generic log reader. The file keeps
each SSE event's name and data (ids changed by design: see ``mianzhang/llm/_reader.py``).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any
from unittest import mock

from mianzhang import SSEDecoder
from mianzhang.llm import (  # type: ignore[attr-defined]
    ChatChunkEncoder,
    Gateway,
    ModelEntry,
    ModelRegistry,
    NativeEncoder,
    ResponsesEncoder,
)
from mianzhang.llm._service import LLMService, PreparedStream
from mianzhang.llm._streams import ChatFormat, NativeFormat, ResponsesFormat  # type: ignore
from mianzhang.log import MemoryEventLog, ProducerRunner, StreamState
from mianzhang.log.serve import log_events
from tests.llm.golden.scenarios import (
    CASES,
    REQUEST,
    SCENARIOS,
    STREAM_IDS,
    WALL_CLOCK,
    ScriptProvider,
    VirtualClock,
    case_name,
    message_item_hex,
)

OUT = Path(__file__).with_name("outputs.json")


def old_format(surface: str, sid: str, gen: Any, options: dict[str, Any]) -> Any:
    if surface == "chat":
        enc = ChatChunkEncoder(
            completion_id=sid,
            model=gen.model,
            created=gen.created,
            include_usage=options["include_usage"],
        )
        return ChatFormat(enc)
    if surface == "responses":
        return ResponsesFormat(
            ResponsesEncoder(
                response_id=sid,
                model=gen.model,
                created=gen.created,
                background=options["background"],
                params=options["params"],
            )
        )
    entry = gen.entry
    return NativeFormat(
        NativeEncoder(
            stream_id=sid,
            model=gen.model,
            provider=entry.kind,
            description=entry.description,
            timings=gen.timings,
        )
    )


async def record(scenario: str, surface: str, options: dict[str, Any]) -> list[list[Any]]:
    clock = VirtualClock()
    provider = ScriptProvider(list(SCENARIOS[scenario]), clock)
    entry = ModelEntry("golden", provider, "golden-up", description="a golden model")
    gateway = Gateway(ModelRegistry([entry], default_model="golden"), clock=clock)
    gen = gateway.start("golden", REQUEST)
    sid = STREAM_IDS[surface]
    prepared = PreparedStream(sid, gen, old_format(surface, sid, gen, options), True, surface)
    async with MemoryEventLog() as log:
        runner = ProducerRunner(log, poll_interval=0.01)
        await log.create(sid, meta=prepared.meta())
        await runner.start(sid, LLMService.producer(log, prepared), background=True)
        async with asyncio.timeout(10):
            if scenario == "cancelled":
                await provider.blocked.wait()
                await runner.cancel(sid)
            while (info := await log.info(sid)) is None or info.state is StreamState.OPEN:
                await asyncio.sleep(0.005)
            raw = b"".join(
                [i if isinstance(i, bytes) else i.encode() async for i in log_events(log, sid)]
            )
        await runner.aclose()
    return [[e.event, e.data] for e in SSEDecoder().decode(raw)]


async def main() -> None:
    real_hex = secrets.token_hex
    outputs: dict[str, list[list[Any]]] = {}
    for scenario, surface, options in CASES:
        item_hex = message_item_hex(STREAM_IDS[surface])

        def token_hex(n: int | None = None, _hex: str = item_hex) -> str:
            return _hex if n == 16 else real_hex(n)

        with (
            mock.patch("time.time", return_value=WALL_CLOCK),
            mock.patch("mianzhang.llm._responses_format.secrets.token_hex", token_hex),
        ):
            outputs[case_name(scenario, surface, options)] = await record(
                scenario, surface, options
            )
    OUT.write_text(json.dumps(outputs, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(outputs)} cases written to {OUT}")  # noqa: T201


if __name__ == "__main__":
    asyncio.run(main())
