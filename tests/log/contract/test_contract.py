"""The EventLog contract, run on every backend (memory and a real redis-server).

Each test states one guarantee of ``mianzhang.log._protocol``; a backend passes only if it
keeps all of them. Concurrency tests are bounded in count and time and wait on events or poll
with a deadline, never on fixed sleeps.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from mianzhang._errors import LogError, StreamClosedError, StreamNotFound
from mianzhang.log import EventLog, LogEvent, Reset, StreamState, format_id, parse_id

from .._util import drain, eventually, seq_of, seqs, take
from .conftest import MakeLog


def epoch_of(event_id: str) -> str:
    parsed = parse_id(event_id)
    assert parsed is not None
    return parsed[0]


# -- append, read, create, info -------------------------------------------------------------
async def test_append_returns_contiguous_ids_of_one_epoch(log: EventLog) -> None:
    await log.create("s")
    ids = [await log.append("s", f"d{i}") for i in range(20)]
    assert len({epoch_of(i) for i in ids}) == 1
    assert [seq_of(i) for i in ids] == list(range(1, 21))
    info = await log.info("s")
    assert info is not None
    assert info.last_id == ids[-1]
    assert info.length == 20
    assert info.epoch == epoch_of(ids[0])


async def test_read_returns_events_exactly_as_appended(log: EventLog) -> None:
    payloads = [("plain", None), ("", None), ("multi\nline\r\nü 中文 🎉", "token"), ("{}", "")]
    ids = [await log.append("s", data, event=event) for data, event in payloads]
    reset, events = await log.read("s")
    assert reset is None
    assert [(e.id, e.seq, e.data, e.event) for e in events] == [
        (i, seq_of(i), data, event) for i, (data, event) in zip(ids, payloads, strict=True)
    ]


async def test_read_after_an_id_and_with_a_limit(log: EventLog) -> None:
    ids = [await log.append("s", str(i)) for i in range(10)]
    reset, events = await log.read("s", ids[3], limit=4)
    assert reset is None
    assert [e.id for e in events] == ids[4:8]
    reset, events = await log.read("s", ids[-1])
    assert (reset, events) == (None, [])
    reset, events = await log.read("s", ids[2], limit=0)
    assert (reset, events) == (None, [])


async def test_create_returns_info_and_an_existing_stream_keeps_its_settings(
    log: EventLog,
) -> None:
    info = await log.create("c", max_events=3, ttl_after_close=30, meta={"owner": "alice"})
    assert info.name == "c"
    assert info.state is StreamState.OPEN
    assert (info.max_events, info.ttl_after_close, info.meta) == (3, 30.0, {"owner": "alice"})
    assert (info.last_id, info.length) == (None, 0)
    again = await log.create("c", max_events=9, ttl_after_close=1, meta={"owner": "bob"})
    assert again == info


async def test_append_creates_a_missing_stream_with_the_log_defaults(make_log: MakeLog) -> None:
    log = await make_log(max_events=7, ttl_after_close=11.0)
    await log.append("auto", "x")
    info = await log.info("auto")
    assert info is not None
    assert (info.state, info.max_events, info.ttl_after_close) == (StreamState.OPEN, 7, 11.0)


async def test_unknown_stream(log: EventLog) -> None:
    assert await log.info("nope") is None
    assert await log.readers("nope") == 0
    with pytest.raises(StreamNotFound):
        await log.read("nope")
    with pytest.raises(StreamNotFound):
        await log.close("nope")
    iterator = log.follow("nope")
    with pytest.raises(StreamNotFound):
        await anext(iterator)


# -- follow -----------------------------------------------------------------------------------
async def test_follow_replays_then_follows_live_then_ends_at_close(log: EventLog) -> None:
    ids = [await log.append("s", str(i)) for i in range(3)]
    iterator = log.follow("s")
    first = await take(iterator, 3)
    assert [e.id for e in first if isinstance(e, LogEvent)] == ids
    pending = asyncio.ensure_future(drain(iterator))
    live = [await log.append("s", f"live{i}") for i in range(3)]
    await log.close("s")
    rest = await pending
    assert [e.id for e in rest if isinstance(e, LogEvent)] == live
    assert all(isinstance(e, LogEvent) for e in rest)


async def test_follow_after_an_id_resumes_right_after_it(log: EventLog) -> None:
    ids = [await log.append("s", str(i)) for i in range(10)]
    await log.close("s")
    assert [e.id for e in await drain(log.follow("s", ids[6]))] == ids[7:]
    assert await drain(log.follow("s", ids[-1])) == []


async def test_follow_has_no_gap_or_duplicate_at_the_replay_live_seam(log: EventLog) -> None:
    """Followers join while a producer appends; each must see 1..N exactly once, in order."""
    rng = random.Random(20240601)
    total = 80
    for round_ in range(25):
        stream = f"seam-{round_}"
        epoch = (await log.create(stream)).epoch
        join_at = rng.randrange(5, total)  # after at least 6 events: "middle" exists
        joined = asyncio.Event()

        async def produce(
            stream: str = stream, join_at: int = join_at, joined: asyncio.Event = joined
        ) -> None:
            for i in range(total):
                await log.append(stream, str(i))
                if i == join_at:
                    joined.set()
                if rng.random() < 0.5:
                    await asyncio.sleep(0)
            await log.close(stream)

        early = asyncio.ensure_future(drain(log.follow(stream)))
        producer = asyncio.ensure_future(produce())
        await joined.wait()
        from_start = asyncio.ensure_future(drain(log.follow(stream)))
        middle = format_id(epoch, 5)
        from_middle = asyncio.ensure_future(drain(log.follow(stream, middle)))
        await asyncio.wait_for(producer, 20)
        got, got_middle = await from_start, await from_middle
        assert seqs(await early) == list(range(1, total + 1)), f"round {round_}"
        assert seqs(got) == list(range(1, total + 1)), f"round {round_}"
        assert [e.data for e in got if isinstance(e, LogEvent)] == [str(i) for i in range(total)]
        assert seqs(got_middle) == list(range(6, total + 1)), f"round {round_}"
        assert all(isinstance(e, LogEvent) for e in got + got_middle)


async def test_close_ends_every_follower_after_the_last_event(log: EventLog) -> None:
    await log.create("s")
    followers = [asyncio.ensure_future(drain(log.follow("s"))) for _ in range(5)]
    await eventually(lambda: _readers_are(log, "s", 5))
    ids = [await log.append("s", str(i)) for i in range(4)]
    await log.close("s")
    for result in await asyncio.gather(*followers):
        assert [e.id for e in result] == ids
    info = await log.info("s")
    assert info is not None
    assert info.state is StreamState.CLOSED
    assert info.length == 4
    assert info.last_id == ids[-1]


async def test_cancelled_stream_ends_followers_and_refuses_appends(log: EventLog) -> None:
    first = await log.append("s", "a")
    follower = asyncio.ensure_future(drain(log.follow("s")))
    await eventually(lambda: _readers_are(log, "s", 1))
    await log.close("s", state=StreamState.CANCELLED)
    assert [e.id for e in await follower] == [first]
    info = await log.info("s")
    assert info is not None
    assert info.state is StreamState.CANCELLED
    await log.close("s", state=StreamState.CLOSED)  # idempotent: the first final state stays
    info = await log.info("s")
    assert info is not None
    assert info.state is StreamState.CANCELLED
    with pytest.raises(StreamClosedError):
        await log.append("s", "late")


async def test_append_after_close_raises_and_changes_nothing(log: EventLog) -> None:
    last = await log.append("s", "a")
    await log.close("s")
    with pytest.raises(StreamClosedError):
        await log.append("s", "b", event="x")
    info = await log.info("s")
    assert info is not None
    assert (info.last_id, info.length) == (last, 1)


async def test_close_rejects_the_open_state(log: EventLog) -> None:
    await log.create("s")
    with pytest.raises(ValueError):
        await log.close("s", state=StreamState.OPEN)


# -- resets -----------------------------------------------------------------------------------
async def test_retention_trims_and_old_ids_get_a_retention_reset(log: EventLog) -> None:
    await log.create("s", max_events=5)
    ids = [await log.append("s", str(i)) for i in range(12)]
    info = await log.info("s")
    assert info is not None
    assert info.length == 5
    expected = Reset("retention", ids[1], ids[7], epoch_of(ids[0]))

    reset, events = await log.read("s", ids[1])
    assert reset == expected
    assert [e.id for e in events] == ids[7:]

    reset, events = await log.read("s")
    assert reset == Reset("retention", None, ids[7], epoch_of(ids[0]))
    assert [e.id for e in events] == ids[7:]

    await log.close("s")
    items = await drain(log.follow("s", ids[1]))
    assert items[0] == expected
    assert [e.id for e in items[1:]] == ids[7:]
    # the last id still retained is not a reset
    assert [e.id for e in await drain(log.follow("s", ids[6]))] == ids[7:]


async def test_a_follower_lapped_by_trimming_gets_a_reset_not_a_gap(log: EventLog) -> None:
    await log.create("s", max_events=5)
    first = await log.append("s", "0")
    iterator = log.follow("s")
    assert [e.id for e in await take(iterator, 1)] == [first]  # then it stops reading
    for i in range(1, 21):
        await log.append("s", str(i))
    await log.close("s")
    rest = await drain(iterator)
    resets = [r for r in rest if isinstance(r, Reset)]
    assert resets, "trimming overtook the follower: it must be told"
    delivered = 1
    for item in rest:
        if isinstance(item, Reset):
            assert item.reason == "retention"
            assert item.requested is not None
            assert seq_of(item.requested) == delivered
            assert item.first_available is not None
            delivered = seq_of(item.first_available) - 1
        else:
            assert item.seq == delivered + 1, "events between resets are contiguous"
            delivered = item.seq
    assert delivered == 21


async def test_an_id_of_another_epoch_gets_an_epoch_reset(log: EventLog) -> None:
    foreign = await log.append("other", "x")
    ids = [await log.append("s", str(i)) for i in range(3)]
    assert epoch_of(foreign) != epoch_of(ids[0])
    expected = Reset("epoch", foreign, ids[0], epoch_of(ids[0]))
    reset, events = await log.read("s", foreign)
    assert reset == expected
    assert [e.id for e in events] == ids
    await log.close("s")
    items = await drain(log.follow("s", foreign))
    assert items[0] == expected
    assert [e.id for e in items[1:]] == ids


@pytest.mark.parametrize("bad", ["", "garbage", "-", "abc-", "abc-x", "x-1.5", "x-١٢", "x- 1"])
async def test_an_unparseable_id_gets_an_invalid_id_reset(log: EventLog, bad: str) -> None:
    ids = [await log.append("s", str(i)) for i in range(2)]
    await log.close("s")
    expected = Reset("invalid_id", bad, ids[0], epoch_of(ids[0]))
    assert await log.read("s", bad) == (expected, (await log.read("s"))[1])
    items = await drain(log.follow("s", bad))
    assert items[0] == expected
    assert [e.id for e in items[1:]] == ids


async def test_an_id_ahead_of_the_stream_gets_an_invalid_id_reset(log: EventLog) -> None:
    ids = [await log.append("s", str(i)) for i in range(2)]
    ahead = format_id(epoch_of(ids[0]), 99)
    reset, events = await log.read("s", ahead)
    assert reset == Reset("invalid_id", ahead, ids[0], epoch_of(ids[0]))
    assert [e.id for e in events] == ids


# -- readers, retention in time, scale ----------------------------------------------------------
async def _readers_are(log: EventLog, stream: str, n: int) -> bool:
    return await log.readers(stream) == n


async def test_readers_counts_open_iterators_until_closed_or_cancelled(log: EventLog) -> None:
    await log.append("s", "x")
    assert await log.readers("s") == 0
    one = log.follow("s")
    await take(one, 1)
    assert await log.readers("s") == 1
    two = log.follow("s")
    await take(two, 1)
    assert await log.readers("s") == 2
    task = asyncio.ensure_future(drain(log.follow("s"), timeout=60))
    await eventually(lambda: _readers_are(log, "s", 3))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: _readers_are(log, "s", 2))
    await one.aclose()
    await eventually(lambda: _readers_are(log, "s", 1))
    await two.aclose()
    await eventually(lambda: _readers_are(log, "s", 0))


async def test_closed_stream_is_deleted_after_ttl_and_a_new_one_gets_a_new_epoch(
    log: EventLog,
) -> None:
    old = await log.append("s", "x")
    await log.create("keep", ttl_after_close=None)
    await log.create("t", ttl_after_close=0.2)
    await log.append("t", "x")
    await log.close("t")
    await log.close("keep")
    assert await log.info("t") is not None

    async def gone() -> bool:
        return await log.info("t") is None

    await eventually(gone, timeout=10)
    with pytest.raises(StreamNotFound):
        await log.read("t")
    assert await log.info("keep") is not None
    new = await log.append("t", "again")
    assert seq_of(new) == 1
    assert epoch_of(new) not in (epoch_of(old),)
    reset, events = await log.read("t")
    assert reset is None
    assert [e.id for e in events] == [new]


async def test_many_concurrent_followers_all_receive_everything_in_order(log: EventLog) -> None:
    n_followers, n_events = 1000, 30
    await log.create("fan")
    followers = [
        asyncio.ensure_future(drain(log.follow("fan"), timeout=90)) for _ in range(n_followers)
    ]
    await eventually(lambda: _readers_are(log, "fan", n_followers), timeout=60)
    ids = [await log.append("fan", str(i)) for i in range(n_events)]
    await log.close("fan")
    results = await asyncio.wait_for(asyncio.gather(*followers), 90)
    for result in results:
        assert [e.id for e in result] == ids


async def test_retention_bounds_what_is_held_whatever_the_readers(log: EventLog) -> None:
    await log.create("b", max_events=10)
    await log.append("b", "0")
    stalled = log.follow("b")
    await take(stalled, 1)  # a reader that never reads again
    never_iterated = log.follow("b")
    for i in range(1, 200):
        await log.append("b", str(i))
        info = await log.info("b")
        assert info is not None
        assert info.length <= 10
    _, events = await log.read("b", limit=1000)
    assert len(events) == 10
    await stalled.aclose()
    await never_iterated.aclose()


async def test_aclose_ends_followers_with_log_error(make_log: MakeLog) -> None:
    log = await make_log()
    await log.append("s", "x")
    follower = asyncio.ensure_future(drain(log.follow("s")))
    await eventually(lambda: _readers_are(log, "s", 1))
    await log.aclose()
    with pytest.raises(LogError):
        await follower
    with pytest.raises(LogError):
        await log.append("s", "y")


# -- idempotent appends -----------------------------------------------------------------------
async def test_a_repeated_idempotency_key_appends_once_and_returns_the_first_id(
    log: EventLog,
) -> None:
    first = await log.append("s", "a", idempotency_key="k1")
    assert await log.append("s", "a again", idempotency_key="k1") == first
    other = await log.append("s", "b", idempotency_key="k2")
    plain = await log.append("s", "c")
    elsewhere = await log.append("t", "a", idempotency_key="k1")  # keys are per stream
    assert len({first, other, plain}) == 3
    assert seq_of(elsewhere) == 1
    _, events = await log.read("s")
    assert [e.data for e in events] == ["a", "b", "c"]


async def test_concurrent_appends_with_one_idempotency_key_store_one_event(log: EventLog) -> None:
    await log.create("s")
    ids = await asyncio.gather(*(log.append("s", "x", idempotency_key="same") for _ in range(20)))
    assert len(set(ids)) == 1
    _, events = await log.read("s")
    assert [e.id for e in events] == [ids[0]]


async def test_a_retry_after_close_returns_the_id_instead_of_failing(log: EventLog) -> None:
    first = await log.append("s", "a", idempotency_key="k")
    await log.close("s")
    assert await log.append("s", "a", idempotency_key="k") == first
    with pytest.raises(StreamClosedError):
        await log.append("s", "b", idempotency_key="new key")


async def test_idempotency_keys_expire_and_do_not_survive_a_new_epoch(log: EventLog) -> None:
    first = await log.append("s", "a", idempotency_key="k", idempotency_ttl=0.2)
    later: list[str] = []

    async def appended_again() -> bool:
        event_id = await log.append("s", "a", idempotency_key="k", idempotency_ttl=0.2)
        later.append(event_id)
        return event_id != first

    await eventually(appended_again, timeout=10)
    assert seq_of(later[-1]) == 2
    assert set(later[:-1]) <= {first}

    await log.create("gone", ttl_after_close=0.05)
    old = await log.append("gone", "a", idempotency_key="k")
    await log.close("gone")

    async def gone() -> bool:
        return await log.info("gone") is None

    await eventually(gone)
    new = await log.append("gone", "a", idempotency_key="k")
    assert epoch_of(new) != epoch_of(old)
    assert seq_of(new) == 1
