"""Fixtures shared by the event-log tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mianzhang.log import RedisEventLog


@pytest.fixture
async def logs(redis_url: str) -> AsyncIterator[list[RedisEventLog]]:
    """Redis logs made by a test (append to it); all closed at teardown."""
    made: list[RedisEventLog] = []
    try:
        yield made
    finally:
        for log in made:
            await log.aclose()
