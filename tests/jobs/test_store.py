"""What only the memory store has: its bound on records. (The contract every store keeps is
in ``contract/``.)"""

from __future__ import annotations

from mianzhang.jobs import JobRecord, JobState, MemoryJobStore


async def test_beyond_max_records_terminal_records_go_first_and_live_ones_stay() -> None:
    store = MemoryJobStore(max_records=2)
    for job_id in ("a", "b"):
        await store.create(JobRecord(id=job_id, type="t", input={}))
    assert await store.transition("a", JobState.SUCCEEDED) is not None
    await store.create(JobRecord(id="c", type="t", input={}))
    assert await store.get("a") is None  # the finished one made room
    await store.create(JobRecord(id="d", type="t", input={}))  # nothing finished: all stay
    assert [r.id for r in await store.recent(10)] == ["d", "c", "b"]
