"""Options are checked when a response (or supervisor) is made, never once it streams."""

from __future__ import annotations

from typing import Any

import pytest

from mianzhang import EventSourceResponse, StreamSupervisor


@pytest.mark.parametrize(
    "kwargs",
    [{"ping": -1}, {"send_timeout": 0}, {"shutdown_grace_period": -1}, {"max_buffer": 0}],
)
def test_bad_options_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        EventSourceResponse([], **kwargs)


def test_bad_retry_range_is_rejected() -> None:
    with pytest.raises(ValueError):
        StreamSupervisor(retry_ms=(10, 5))
    with pytest.raises(ValueError):
        StreamSupervisor(retry_ms=(-1, 5))
