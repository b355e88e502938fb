"""Progress publishing: throttled by time and by step, never failing the upload."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from mianzhang.files import FilesSettings, ProgressPublisher, progress_stream
from mianzhang.log import MemoryEventLog
from mianzhang.server import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def states(log: MemoryEventLog, upload_id: str) -> list[tuple[str, int]]:
    _, events = await log.read(progress_stream(upload_id))
    return [(json.loads(e.data)["state"], json.loads(e.data)["received"]) for e in events]


async def test_time_and_step_throttle(log: MemoryEventLog) -> None:
    clock = Clock()
    publisher = ProgressPublisher(log, "u1", 1000, interval=0.1, step=0.01, clock=clock)
    await publisher.start()
    await publisher.update(5)  # too soon
    clock.now = 0.2
    await publisher.update(5)  # 0.5 %: below the step
    await publisher.update(10)  # 1 %: published
    await publisher.update(500)  # too soon after the last
    clock.now = 0.31
    await publisher.update(500)
    await publisher.complete(size=1000, sha256="ab", url="/v1/files/u1")
    assert await states(log, "u1") == [
        ("receiving", 0),
        ("receiving", 10),
        ("receiving", 500),
        ("complete", 1000),
    ]
    info = await log.info(progress_stream("u1"))
    assert info is not None and info.state == "closed"


async def test_unknown_total_is_throttled_by_time_only(log: MemoryEventLog) -> None:
    clock = Clock()
    publisher = ProgressPublisher(log, "u2", None, interval=1.0, clock=clock)
    await publisher.start()
    for second in range(1, 4):
        clock.now = float(second)
        await publisher.update(second)
        await publisher.update(second * 10)  # same instant: throttled
    assert [r for _, r in await states(log, "u2")] == [0, 1, 2, 3]


async def test_a_failing_log_never_fails_the_upload(log: MemoryEventLog) -> None:
    publisher = ProgressPublisher(log, "u3", 10)
    await publisher.start()
    await log.close(progress_stream("u3"))  # appends now raise StreamClosedError
    await publisher.update(5)
    await publisher.fail("boom", 5)
    assert publisher.published == 1


async def test_no_log_is_a_no_op() -> None:
    publisher = ProgressPublisher(None, "u4", 10)
    await publisher.start()
    await publisher.update(10)
    await publisher.complete(size=10, sha256="x", url="/")
    assert publisher.published == 0


async def test_closed_stream_retention_is_the_given_ttl(log: MemoryEventLog) -> None:
    publisher = ProgressPublisher(log, "u5", 10, ttl_after_close=42.0)
    await publisher.start()
    info = await log.info(progress_stream("u5"))
    assert info is not None and info.ttl_after_close == 42.0


@pytest.mark.parametrize("ttl", [0, -1.0])
def test_progress_ttl_must_be_positive(ttl: float) -> None:
    with pytest.raises(ValidationError):
        FilesSettings(progress_ttl=ttl)


def test_progress_ttl_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIANZHANG_FILES__PROGRESS_TTL", "60")
    assert Settings().files.progress_ttl == 60.0
    monkeypatch.delenv("MIANZHANG_FILES__PROGRESS_TTL")
    assert Settings().files.progress_ttl == 600.0
