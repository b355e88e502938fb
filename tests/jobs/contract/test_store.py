"""The JobStore contract (``mianzhang.jobs._store.JobStore``), run on every backend (memory
and a real redis-server).

Each test states one guarantee of the protocol; a backend passes only if it keeps all of them.
What only one backend has (Redis key expiry and its ``recent`` index; the memory store's
record bound) is tested beside that backend (``tests/jobs/test_redis.py``,
``tests/jobs/test_service.py``).
"""

from __future__ import annotations

from mianzhang.jobs import JobRecord, JobState, JobStore
from tests._support.wait import eventually

from .conftest import MakeStore


async def test_a_record_round_trips_exactly(store: JobStore) -> None:
    payload = {"big": 2**62 + 1, "empty": [], "obj": {}, "text": "é\n", "none": None}
    await store.create(JobRecord(id="j1", type="t", input=payload, created=1234.5))
    rec = await store.get("j1")
    assert rec is not None and rec.input == payload and rec.state is JobState.QUEUED
    expected = JobRecord(id="j1", type="t", input=payload, created=1234.5)
    assert rec.to_dict() == expected.to_dict()
    assert await store.get("missing") is None


async def test_the_first_terminal_state_wins(make_store: MakeStore) -> None:
    store = make_store(keep_finished=60)
    await store.create(JobRecord(id="j2", type="t", input={}))
    running = await store.transition("j2", JobState.RUNNING, attempt=1)
    assert running is not None and running.attempt == 1 and running.state is JobState.RUNNING
    done = await store.transition("j2", JobState.SUCCEEDED, result=[1, 2])
    assert done is not None and done.result == [1, 2] and done.finished is not None
    assert await store.transition("j2", JobState.FAILED) is None
    unchanged = await store.update("j2", result="changed")
    assert unchanged is not None and unchanged.result == [1, 2]
    rec = await store.get("j2")
    assert rec is not None and rec.state is JobState.SUCCEEDED and rec.result == [1, 2]


async def test_a_terminal_state_is_final_even_straight_from_queued(store: JobStore) -> None:
    await store.create(JobRecord(id="j1", type="x", input={}))
    assert await store.transition("j1", JobState.SUCCEEDED, result=1) is not None
    assert await store.transition("j1", JobState.FAILED) is None
    assert (await store.update("j1", result=2)) is not None
    rec = await store.get("j1")
    assert rec is not None and rec.state is JobState.SUCCEEDED and rec.result == 1


async def test_update_sets_fields_of_a_live_record_and_keeps_its_state(store: JobStore) -> None:
    await store.create(JobRecord(id="j3", type="t", input={"a": 1}))
    updated = await store.update("j3", progress=50.0, message="half", cancel_requested=True)
    assert updated is not None and updated.state is JobState.QUEUED
    assert (updated.progress, updated.message, updated.cancel_requested) == (50.0, "half", True)
    rec = await store.get("j3")
    assert rec is not None and rec.input == {"a": 1}
    assert (rec.progress, rec.message, rec.cancel_requested) == (50.0, "half", True)


async def test_unknown_ids_are_none_everywhere_and_nothing_is_created(store: JobStore) -> None:
    assert await store.get("nope") is None
    assert await store.update("nope", progress=1.0) is None
    assert await store.transition("nope", JobState.RUNNING) is None
    assert await store.get("nope") is None
    assert await store.recent(10) == []


async def test_recent_lists_the_newest_records_first_up_to_the_limit(store: JobStore) -> None:
    for i in range(5):
        await store.create(JobRecord(id=f"r{i}", type="t", input={}, created=1000.0 + i))
    assert [r.id for r in await store.recent(10)] == ["r4", "r3", "r2", "r1", "r0"]
    assert [r.id for r in await store.recent(2)] == ["r4", "r3"]
    assert await store.recent(0) == []


async def test_a_terminal_record_is_forgotten_after_keep_finished(make_store: MakeStore) -> None:
    store = make_store(keep_finished=1)
    await store.create(JobRecord(id="old", type="t", input={}))
    await store.create(JobRecord(id="live", type="t", input={}))
    assert await store.transition("old", JobState.FAILED, error={"type": "x", "message": "y"})

    async def forgotten() -> bool:
        return await store.get("old") is None

    await eventually(forgotten, timeout=10, interval=0.05)
    assert [r.id for r in await store.recent(10)] == ["live"]
    live = await store.get("live")
    assert live is not None and live.state is JobState.QUEUED  # a live record is kept
