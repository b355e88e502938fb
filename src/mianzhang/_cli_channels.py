"""``mianzhang publish`` / ``mianzhang subscribe`` (to be completed by the channels work)."""

from __future__ import annotations

__all__ = ["run_publish", "run_subscribe"]


def run_publish(
    channel: str,
    data: str,
    *,
    url: str,
    api_key: str | None,
    event: str | None,
    idempotency_key: str | None,
    json_data: bool,
) -> int:
    raise NotImplementedError


def run_subscribe(
    channel: str, *, url: str, token: str | None, last_event_id: str | None, history: bool
) -> int:
    raise NotImplementedError
