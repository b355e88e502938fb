"""The event-loop lag monitor (``server/_loop_lag.py``): a loop blocked for a known time shows
up in the histogram and the max gauge, on asyncio's loop and on uvloop; it leaves no timer
armed after closing; the app exposes both metrics on ``/metrics`` and closes the monitor at
shutdown. The only timing assertion is the lower bound the monitor guarantees: a block of
``BLOCK`` seconds is seen as a lag of at least ``BLOCK - INTERVAL``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
import uvloop
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from mianzhang.server import Settings, create_app
from mianzhang.server._loop_lag import LoopLagMonitor
from tests._support.wait import eventually, eventually_sync

BLOCK = 0.3  # the stimulus: a synchronous busy wait this long inside a callback
INTERVAL = 0.05
GRAIN = 0.002  # uvloop's clock counts whole milliseconds (due and run both rounded down)
LAG = "mianzhang_event_loop_lag_seconds"
MAX = "mianzhang_event_loop_lag_max_seconds"


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    assert value is not None, name
    return value


def _busy_wait(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


async def _block_and_measure(registry: CollectorRegistry) -> tuple[float, float]:
    """Block the loop for ``BLOCK`` s while a monitor runs; the max gauge and the monitor's
    ``largest`` once the first tick after the block has run."""
    async with LoopLagMonitor(registry, interval=INTERVAL) as monitor:
        await eventually(lambda: _value(registry, f"{LAG}_count") >= 1, timeout=10)
        ticks_after_block: list[float] = []

        def block() -> None:
            _busy_wait(BLOCK)
            ticks_after_block.append(_value(registry, f"{LAG}_count"))

        asyncio.get_running_loop().call_soon(block)
        await eventually(
            lambda: (
                bool(ticks_after_block) and _value(registry, f"{LAG}_count") > ticks_after_block[0]
            ),
            timeout=10,
        )
        return _value(registry, MAX), monitor.largest


def _check_blocked(registry: CollectorRegistry, gauge: float, largest: float) -> None:
    assert gauge == largest
    assert gauge >= BLOCK - INTERVAL - GRAIN
    count = _value(registry, f"{LAG}_count")
    assert count >= 2  # a tick before the block and the one after it
    # the late tick is above the 0.1 s bucket (BLOCK - INTERVAL = 0.25 s)
    assert _value(registry, f"{LAG}_bucket", le="0.1") <= count - 1
    assert _value(registry, f"{LAG}_sum") >= BLOCK - INTERVAL - GRAIN


async def test_a_blocked_asyncio_loop_shows_in_the_histogram_and_the_max() -> None:
    registry = CollectorRegistry()
    async with asyncio.timeout(30):
        gauge, largest = await _block_and_measure(registry)
    _check_blocked(registry, gauge, largest)


def test_a_blocked_uvloop_loop_shows_in_the_histogram_and_the_max() -> None:
    registry = CollectorRegistry()

    async def bounded() -> tuple[float, float]:
        async with asyncio.timeout(30):
            return await _block_and_measure(registry)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        gauge, largest = runner.run(bounded())
    _check_blocked(registry, gauge, largest)


async def test_closing_leaves_no_timer_armed(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    armed: list[asyncio.TimerHandle] = []
    call_later = loop.call_later

    def recording(delay: float, callback: Callable[..., object], *args: Any) -> Any:
        handle = call_later(delay, callback, *args)
        armed.append(handle)
        return handle

    monkeypatch.setattr(loop, "call_later", recording)
    registry = CollectorRegistry()
    monitor = LoopLagMonitor(registry, interval=0.01)
    async with asyncio.timeout(30):
        async with monitor:
            assert monitor.running
            await eventually(lambda: _value(registry, f"{LAG}_count") >= 3)
    assert not monitor.running
    assert len(armed) >= 4  # the first timer and one re-armed per tick
    assert armed[-1].cancelled()  # the one armed at closing is cancelled...
    timers, count = len(armed), _value(registry, f"{LAG}_count")
    monitor._tick(loop)  # ...and a tick already due when it closed re-arms and records nothing
    assert len(armed) == timers
    assert _value(registry, f"{LAG}_count") == count
    await monitor.aclose()  # idempotent


def test_a_monitor_starts_once_and_needs_a_positive_interval() -> None:
    with pytest.raises(ValueError, match="interval"):
        LoopLagMonitor(CollectorRegistry(), interval=0)

    async def twice() -> None:
        async with LoopLagMonitor(CollectorRegistry()) as monitor:
            with pytest.raises(RuntimeError, match="already"):
                monitor.start()

    asyncio.run(twice())


def _families(client: TestClient) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            found.setdefault(family.name, {})[sample.name] = sample.value
    return found


def test_the_app_serves_both_metrics() -> None:
    settings = Settings(files={"enabled": False}, loop_lag_interval=0.01)  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as client:
        eventually_sync(lambda: _families(client)[LAG][f"{LAG}_count"] >= 2, timeout=10)
        families = _families(client)
    assert families[LAG][f"{LAG}_sum"] >= 0
    assert families[MAX][MAX] >= 0
