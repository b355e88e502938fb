"""ResetEvent parsing."""

from __future__ import annotations

from mianzhang import ServerSentEvent
from mianzhang.client import ResetEvent


def test_reset_event_is_parsed_and_keeps_the_original() -> None:
    data = '{"reason": "retention", "requested": "e-3", "first_available": "e-9", "epoch": "e"}'
    event = ServerSentEvent(data, event="reset", id="e-9", retry=100)
    reset = ResetEvent.from_event(event)
    assert reset is not None
    assert (reset.reason, reset.requested, reset.first_available, reset.epoch) == (
        "retention",
        "e-3",
        "e-9",
        "e",
    )
    assert isinstance(reset, ServerSentEvent)
    assert reset == event  # same wire fields
    assert "retention" in repr(reset)


def test_missing_optional_fields_are_none() -> None:
    reset = ResetEvent.from_event(
        ServerSentEvent('{"reason": "epoch", "requested": 5}', event="reset")
    )
    assert reset is not None
    assert (reset.requested, reset.first_available, reset.epoch) == (None, None, None)


def test_unusable_reset_data_is_not_parsed() -> None:
    for data in ("not json", "[1, 2]", '{"requested": "x"}', '{"reason": 3}'):
        assert ResetEvent.from_event(ServerSentEvent(data, event="reset")) is None
    assert ResetEvent.from_event(ServerSentEvent('{"reason": "epoch"}', event="message")) is None
