"""``GET /v1/streams/{id}`` for generations: the home surface from the stream's metadata, any
other with ``?format=``, ``InvalidRequest`` for an unknown format, 404/204 as for any stream, resume
with the reader's ids, and other streams still served by the generic reader."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mianzhang import InvalidRequest, SSEDecoder
from mianzhang.llm import Chunk, Finished, Started, Timings, Token, Usage
from mianzhang.llm._canonical import StartRecord, event_entry, start_entry, start_meta
from mianzhang.llm._serve import serve_stream
from mianzhang.log import MemoryEventLog
from mianzhang.log.serve import StreamHost

S = "gen-http"


@pytest.fixture
async def log() -> AsyncIterator[MemoryEventLog]:
    async with MemoryEventLog() as memory:
        started = Started("m", 1700000000, "demo", "d")
        await memory.create(S, meta=start_meta(StartRecord(started, "native", {})))
        finished = Finished(
            "stop", Usage(1, 2), Timings(0.1, 0.2, 2), "demo", "m", usage_reported=True
        )
        entries = [start_entry(started, "native", {})]
        entries += [event_entry(Token(Chunk(text=t), 0.1)) for t in ("a", "b")]
        entries.append(event_entry(finished))
        for entry in entries:
            await memory.append(S, entry.data, event=entry.event)
        await memory.close(S)
        await memory.append("plain", "hello")
        await memory.close("plain")
        legacy = {"kind": "llm.chat", "model": "m", "created": "1", "background": "0"}
        await memory.create("chatcmpl-old", meta=legacy)  # written before canonical logs
        await memory.append("chatcmpl-old", '{"id":"chatcmpl-old","choices":[]}')
        await memory.append("chatcmpl-old", "[DONE]")
        await memory.close("chatcmpl-old")
        yield memory


@pytest.fixture
async def http(log: MemoryEventLog) -> AsyncIterator[httpx.AsyncClient]:
    host = StreamHost(log)

    async def read(request: Request) -> Response:
        stream = request.path_params["stream"]
        return await serve_stream(host, request, stream, request.query_params.get("format"))

    app = Starlette(routes=[Route("/s/{stream}", read)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client
    await host.aclose()


async def test_a_generation_is_served_in_its_home_surface(http: httpx.AsyncClient) -> None:
    response = await http.get(f"/s/{S}")
    assert response.status_code == 200 and response.headers["x-stream-id"] == S
    events = SSEDecoder().decode(response.content)
    assert [e.event for e in events] == ["start", "content", "content", "complete"]


@pytest.mark.parametrize(
    ("name", "last"),
    [("chat", "[DONE]"), ("responses", "response.completed"), ("native", "complete")],
)
async def test_any_surface_can_be_asked_for(http: httpx.AsyncClient, name: str, last: str) -> None:
    response = await http.get(f"/s/{S}", params={"format": name})
    events = SSEDecoder().decode(response.content)
    assert last in (events[-1].event, events[-1].data)
    text = []
    for e in events:
        if e.data == "[DONE]":
            continue
        body = orjson.loads(e.data)
        if name == "chat":
            text += [c["delta"].get("content", "") for c in body["choices"]]
        elif e.event in ("content", "response.output_text.delta"):
            text.append(body.get("text") or body.get("delta"))
    assert "".join(text) == "ab"


async def test_resume_and_the_end_of_a_read_stream(http: httpx.AsyncClient) -> None:
    full = SSEDecoder().decode((await http.get(f"/s/{S}?format=responses")).content)
    middle = full[3].id
    assert "." in middle  # inside the group of the first token
    rest = await http.get(f"/s/{S}?format=responses", headers={"Last-Event-ID": middle})
    assert [e.data for e in SSEDecoder().decode(rest.content)] == [e.data for e in full[4:]]
    done = await http.get(f"/s/{S}?format=responses", headers={"Last-Event-ID": full[-1].id})
    assert done.status_code == 204


async def test_bad_formats_raise_invalid_request_and_unknown_streams_404(
    http: httpx.AsyncClient,
) -> None:
    with pytest.raises(InvalidRequest, match="morse") as unknown:
        await http.get(f"/s/{S}", params={"format": "morse"})
    assert unknown.value.param == "format"  # rendered 400 by the server (tests/server)
    with pytest.raises(InvalidRequest, match="not a generation"):
        await http.get("/s/plain", params={"format": "chat"})
    missing = await http.get("/s/nope", params={"format": "chat"})
    assert missing.status_code == 404


async def test_other_streams_are_served_by_the_generic_reader(http: httpx.AsyncClient) -> None:
    response = await http.get("/s/plain")
    assert [e.data for e in SSEDecoder().decode(response.content)] == ["hello"]


async def test_a_generation_written_before_canonical_logs_is_served_as_stored(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get("/s/chatcmpl-old")
    data = [e.data for e in SSEDecoder().decode(response.content)]
    assert data == ['{"id":"chatcmpl-old","choices":[]}', "[DONE]"]
