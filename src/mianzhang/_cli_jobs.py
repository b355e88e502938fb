"""``mianzhang worker`` (to be completed by the jobs work)."""

from __future__ import annotations

__all__ = ["run_worker_command"]


def run_worker_command(*, redis_url: str | None, concurrency: int) -> int:
    raise NotImplementedError
