"""Shared pieces of the backends: where a reader starts (``resolve_after``) and waking."""

from __future__ import annotations

import asyncio

import pytest

from mianzhang.log import Reset
from mianzhang.log._common import Notifier, check_retention, lapped, new_epoch, resolve_after

E = "ep0ch"


@pytest.mark.parametrize(
    ("after", "first", "last", "reset_reason", "next_seq"),
    [
        (None, None, 0, None, 1),  # empty stream, from the start
        (None, 1, 5, None, 1),
        (None, 3, 5, "retention", 3),  # head trimmed: the reader is told
        (f"{E}-0", 1, 5, None, 1),  # "before the first event"
        (f"{E}-2", 1, 5, None, 3),
        (f"{E}-5", 1, 5, None, 6),  # caught up
        (f"{E}-2", 3, 5, None, 3),  # exactly the last trimmed one: nothing lost
        (f"{E}-1", 3, 5, "retention", 3),
        (f"{E}-6", 1, 5, "invalid_id", 1),  # ahead of the log
        ("other-2", 1, 5, "epoch", 1),
        ("garbage", 1, 5, "invalid_id", 1),
        (f"{E}-x", 1, 5, "invalid_id", 1),
        (f"{E}-1", None, 5, "retention", 6),  # nothing retained although 5 were appended
        ("other-1", None, 0, "epoch", 1),
    ],
)
def test_resolve_after(
    after: str | None, first: int | None, last: int, reset_reason: str | None, next_seq: int
) -> None:
    reset, start = resolve_after(after, epoch=E, first=first, last=last)
    assert start == next_seq
    if reset_reason is None:
        assert reset is None
    else:
        available = None if first is None else f"{E}-{first}"
        assert reset == Reset(reset_reason, after, available, E)  # type: ignore[arg-type]


def test_lapped_names_the_last_delivered_id() -> None:
    assert lapped(E, 4, 9) == Reset("retention", f"{E}-4", f"{E}-9", E)
    assert lapped(E, 4, None) == Reset("retention", f"{E}-4", None, E)


def test_epochs_are_random_and_parseable() -> None:
    epochs = {new_epoch() for _ in range(100)}
    assert len(epochs) == 100
    assert all("-" not in e and len(e) == 12 for e in epochs)


@pytest.mark.parametrize(
    ("max_events", "ttl"), [(0, None), (-1, None), (True, None), (None, -1.0), (None, float("nan"))]
)
def test_bad_retention_is_rejected(max_events: int | None, ttl: float | None) -> None:
    with pytest.raises(ValueError):
        check_retention(max_events, ttl)


async def test_notifier_wakes_every_waiter_with_one_notify() -> None:
    notifier = Notifier()
    woken = 0

    async def waiter() -> None:
        nonlocal woken
        await notifier.wait()
        woken += 1

    tasks = [asyncio.ensure_future(waiter()) for _ in range(50)]
    await asyncio.sleep(0)  # let them all start waiting (nothing to await instead)
    notifier.notify()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert woken == 50


async def test_cancelling_one_waiter_does_not_wake_or_cancel_the_others() -> None:
    notifier = Notifier()
    victim = asyncio.ensure_future(notifier.wait())
    others = [asyncio.ensure_future(notifier.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    victim.cancel()
    with pytest.raises(asyncio.CancelledError):
        await victim
    await asyncio.sleep(0)
    assert not any(o.done() for o in others)
    notifier.notify()
    await asyncio.wait_for(asyncio.gather(*others), 5)


async def test_notify_without_waiters_is_not_remembered() -> None:
    notifier = Notifier()
    notifier.notify()
    waiting = asyncio.ensure_future(notifier.wait())
    await asyncio.sleep(0)
    assert not waiting.done()
    notifier.notify()
    await asyncio.wait_for(waiting, 5)


async def test_waiters_cancelled_while_idle_do_not_accumulate() -> None:
    """Readers that come and go on a stream that never changes keep the waiter list small."""
    notifier = Notifier()
    for _ in range(2000):
        waiting = asyncio.ensure_future(notifier.wait())
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert len(notifier._waiters) <= 128
    keeper = asyncio.ensure_future(notifier.wait())
    await asyncio.sleep(0)
    notifier.notify()
    await asyncio.wait_for(keeper, 5)
