"""``open_services``: every service is closed in the reverse order of its building, the log
last, and a failure while building closes what was built so far."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from mianzhang.files import FilesService
from mianzhang.jobs import JobHost
from mianzhang.llm import LLMService
from mianzhang.log import MemoryEventLog
from mianzhang.log.serve import StreamHost
from mianzhang.server import Settings
from mianzhang.server._limits import RateLimiter
from mianzhang.server._services import open_services

CLOSABLE = {
    "jobs": JobHost,
    "host": StreamHost,
    "files": FilesService,
    "llm": LLMService,
    "limiter": RateLimiter,
    "log": MemoryEventLog,
}


@pytest.fixture
def closed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the services in the order their ``aclose`` ran."""
    order: list[str] = []

    def recording(name: str, original: Callable[[Any], Awaitable[None]]) -> Any:
        async def aclose(self: Any) -> None:
            order.append(name)
            await original(self)

        return aclose

    for name, cls in CLOSABLE.items():
        monkeypatch.setattr(cls, "aclose", recording(name, cls.aclose))
    return order


def _settings(tmp_path: Path) -> Settings:
    return Settings(files={"directory": tmp_path / "files"}, web=False)  # type: ignore[arg-type]


async def test_services_close_in_reverse_order_with_the_log_last(
    tmp_path: Path, closed: list[str]
) -> None:
    async with open_services(_settings(tmp_path)) as services:
        assert services.files is not None
        assert closed == []
    assert closed == ["jobs", "host", "files", "llm", "limiter", "log"]


async def test_a_failure_while_building_closes_what_was_built(
    tmp_path: Path, closed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(*args: object, **kwargs: object) -> JobHost:
        raise RuntimeError("jobs cannot start")

    monkeypatch.setattr(JobHost, "start", refuse)
    with pytest.raises(RuntimeError, match="jobs cannot start"):
        async with open_services(_settings(tmp_path)):
            pytest.fail("the services were yielded although the jobs never started")
    assert closed == ["host", "files", "llm", "limiter", "log"]
