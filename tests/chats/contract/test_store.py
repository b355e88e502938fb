"""The ChatStore contract (``mianzhang.chats.ChatStore``), run on every backend (memory and a
real redis-server). Each test states one guarantee of the protocol."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from mianzhang.chats import Chat, ChatStore, Turn
from tests._support.wait import eventually

from .conftest import MakeStore

USER = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi é\n"}]}
ANSWER = {"id": "gen-1", "role": "assistant", "parts": [{"type": "text", "text": "hello"}]}


def turn(stream: str, seconds: float = 60.0) -> Turn:
    return Turn(stream, f"client-{stream}", time.time() + seconds)


async def test_a_chat_round_trips_exactly(store: ChatStore) -> None:
    odd: dict[str, Any] = {"big": 2**62 + 1, "empty": [], "obj": {}, "none": None, "f": 1.5}
    messages = [USER, {**ANSWER, "metadata": odd}]
    chat = Chat("c1", "api_key:alice", title="Hello", model="m", created=1234.5, messages=messages)
    assert await store.create(chat)
    found = await store.get("c1")
    assert found is not None
    assert found.to_json() == chat.to_json()
    assert found.messages[1]["metadata"] == odd
    assert await store.get("missing") is None


async def test_reads_are_copies(store: ChatStore) -> None:
    chat = Chat("c1", "o", messages=[dict(USER)])
    await store.create(chat)
    chat.messages.append(ANSWER)  # the caller's object is not the stored one
    found = await store.get("c1")
    assert found is not None and len(found.messages) == 1
    found.messages.clear()
    again = await store.get("c1")
    assert again is not None and again.messages == [USER]


async def test_create_never_overwrites(store: ChatStore) -> None:
    assert await store.create(Chat("c1", "alice", title="first"))
    assert not await store.create(Chat("c1", "mallory", title="second"))
    found = await store.get("c1")
    assert found is not None and (found.owner, found.title) == ("alice", "first")


async def test_only_create_makes_a_chat(store: ChatStore) -> None:
    assert await store.update("nope", title="x") is None
    assert await store.begin("nope", turn("s1"), replaces=None) is None
    assert await store.finish("nope", "s1", ANSWER) is None
    assert not await store.delete("nope")
    assert await store.get("nope") is None


async def test_update_renames_without_reordering(store: ChatStore) -> None:
    await store.create(Chat("old", "o", created=100.0))
    await store.create(Chat("new", "o", created=200.0))
    renamed = await store.update("old", title="Renamed", model="m2")
    assert renamed is not None and (renamed.title, renamed.model) == ("Renamed", "m2")
    assert [c.id for c in await store.recent("o")] == ["new", "old"]
    found = await store.get("old")
    assert found is not None and found.title == "Renamed" and found.updated == 100.0


async def test_list_is_per_owner_newest_first_and_bounded(store: ChatStore) -> None:
    for i in range(5):
        await store.create(Chat(f"a{i}", "alice", title=f"t{i}", created=1000.0 + i))
    await store.create(Chat("b0", "bob", created=5000.0))
    listed = await store.recent("alice")
    assert [c.id for c in listed] == ["a4", "a3", "a2", "a1", "a0"]
    assert listed[0].title == "t4" and listed[0].running is None
    assert [c.id for c in await store.recent("alice", limit=2)] == ["a4", "a3"]
    assert await store.recent("alice", limit=0) == []
    assert [c.id for c in await store.recent("bob")] == ["b0"]
    assert await store.recent("nobody") == []
    # activity moves a chat to the top
    await store.begin("a0", turn("s0"), replaces=None)
    assert [c.id for c in await store.recent("alice", limit=1)] == ["a0"]


async def test_begin_is_a_compare_and_set_on_the_turn(store: ChatStore) -> None:
    await store.create(Chat("c1", "o", messages=[USER]))
    started = await store.begin("c1", turn("s1"), replaces=None, messages=[USER], model="m")
    assert started is not None and started.active_stream == "s1" and started.model == "m"
    assert started.turn is not None and started.turn.client_id == "client-s1"
    # a second starter that saw no turn loses; one that saw s1 wins
    assert await store.begin("c1", turn("s2"), replaces=None) is None
    assert await store.begin("c1", turn("s3"), replaces="sX") is None
    again = await store.begin("c1", turn("s2"), replaces="s1")
    assert again is not None and again.active_stream == "s2"
    found = await store.get("c1")
    assert found is not None and found.active_stream == "s2" and found.messages == [USER]
    listed = await store.recent("o")
    assert listed[0].running == "s2"


async def test_concurrent_begins_have_one_winner(store: ChatStore) -> None:
    await store.create(Chat("c1", "o"))
    results = await asyncio.gather(
        *(store.begin("c1", turn(f"s{i}"), replaces=None) for i in range(8))
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    found = await store.get("c1")
    assert found is not None and found.active_stream == winners[0].active_stream


async def test_finish_appends_the_answer_of_the_current_turn_once(store: ChatStore) -> None:
    await store.create(Chat("c1", "o"))
    await store.begin("c1", turn("gen-1"), replaces=None, messages=[USER])
    done = await store.finish("c1", "gen-1", ANSWER)
    assert done is not None and done.messages == [USER, ANSWER]
    assert done.active_stream is None and done.turn is not None
    assert done.turn.stream == "gen-1"  # the latest turn is remembered, not running
    again = await store.finish("c1", "gen-1", ANSWER)  # idempotent
    assert again is not None and again.messages == [USER, ANSWER]
    assert (await store.recent("o"))[0].running is None


async def test_finish_replaces_a_message_the_client_already_sent(store: ChatStore) -> None:
    partial = {**ANSWER, "parts": [{"type": "text", "text": "hel"}]}
    await store.create(Chat("c1", "o"))
    await store.begin("c1", turn("gen-1"), replaces=None, messages=[USER])
    # the client posted its next turn (with the answer it built) before the end was recorded
    nxt = {"id": "u2", "role": "user", "parts": [{"type": "text", "text": "more"}]}
    await store.begin("c1", turn("gen-2"), replaces="gen-1", messages=[USER, partial, nxt])
    late = await store.finish("c1", "gen-1", ANSWER)
    assert late is not None and late.messages == [USER, ANSWER, nxt]
    assert late.active_stream == "gen-2"  # the running turn is not touched


async def test_a_superseded_answer_is_not_brought_back(store: ChatStore) -> None:
    await store.create(Chat("c1", "o"))
    await store.begin("c1", turn("gen-1"), replaces=None, messages=[USER])
    await store.begin("c1", turn("gen-2"), replaces="gen-1", messages=[USER])  # regenerate
    late = await store.finish("c1", "gen-1", ANSWER)
    assert late is not None and late.messages == [USER] and late.active_stream == "gen-2"


async def test_a_turn_stops_counting_as_running_when_its_time_is_up(store: ChatStore) -> None:
    await store.create(Chat("c1", "o"))
    await store.begin("c1", turn("s1", seconds=0.2), replaces=None)

    async def ended() -> bool:
        found = await store.get("c1")
        return found is not None and found.turn is not None and found.active_stream is None

    await eventually(ended, timeout=5)
    # an expired turn is still the one a new turn replaces (compare-and-set on the stream)
    assert await store.begin("c1", turn("s2"), replaces=None) is None
    assert await store.begin("c1", turn("s2"), replaces="s1") is not None


async def test_delete_forgets_the_chat(store: ChatStore) -> None:
    await store.create(Chat("c1", "o", messages=[USER]))
    assert await store.delete("c1")
    assert await store.get("c1") is None
    assert await store.recent("o") == []
    assert await store.create(Chat("c1", "other"))  # the id is free again


async def test_a_chat_is_forgotten_ttl_after_its_last_write(make_store: MakeStore) -> None:
    store = make_store(ttl=0.5)
    await store.create(Chat("c1", "o"))
    await store.create(Chat("c2", "o"))

    async def gone() -> bool:
        return await store.get("c1") is None and await store.recent("o") == []

    await eventually(gone, timeout=5)
    assert await store.get("c2") is None


async def test_begin_gives_a_title_only_to_a_chat_without_one(store: ChatStore) -> None:
    await store.create(Chat("c1", "o"))
    await store.create(Chat("c2", "o", title="Mine"))
    titled = await store.begin("c1", turn("s1"), replaces=None, title="From the first message")
    kept = await store.begin("c2", turn("s2"), replaces=None, title="Not this")
    assert titled is not None and titled.title == "From the first message"
    assert kept is not None and kept.title == "Mine"
    again = await store.begin("c1", turn("s3"), replaces="s1", title="Later")
    assert again is not None and again.title == "From the first message"


async def test_a_listing_follows_create_delete_and_a_new_owner(store: ChatStore) -> None:
    assert await store.create(Chat("c1", "alice", created=100.0))
    assert [c.id for c in await store.recent("alice")] == ["c1"]  # listed once create returned
    assert await store.delete("c1")
    assert await store.recent("alice") == []  # and no longer once delete returned
    assert await store.create(Chat("c1", "bob", created=50.0))  # the id, re-created by bob
    assert await store.recent("alice") == []
    assert [c.id for c in await store.recent("bob")] == ["c1"]
