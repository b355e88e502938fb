"""``GET /v1/tails/{name}`` on a real server, the file changed underneath by this test: the
last N lines, appended lines, rename-rotation (the old file's rest, then the new file),
truncation (a ``reset``, then the new content), resume by the byte-offset id on a new
connection, and nothing reachable but the allow-listed names."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from mianzhang import ServerSentEvent
from mianzhang.client import EventStream, ResetEvent, connect
from tests._support.procs import ServerProcess, uvicorn_process
from tests.e2e._tails import log_with, tails_env

pytestmark = pytest.mark.e2e


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    return log_with(tmp_path, [f"boot {i}" for i in range(5)])


@pytest.fixture
def server(log_file: Path) -> Iterator[ServerProcess]:
    env = tails_env(log_file, MIANZHANG_WEB="false")
    with uvicorn_process("mianzhang.server:create_app", factory=True, env=env) as proc:
        yield proc


def append(path: Path, text: str) -> None:
    with path.open("a") as fh:
        fh.write(text)


async def take(stream: EventStream, n: int) -> list[ServerSentEvent]:
    got: list[ServerSentEvent] = []
    async with asyncio.timeout(10):
        while len(got) < n:
            got.append(await anext(aiter(stream)))
    return got


def epoch(event: ServerSentEvent) -> str:
    assert event.id
    return event.id.rsplit("-", 1)[0]


async def test_tail_follows_appends_rotation_and_truncation(
    server: ServerProcess, log_file: Path
) -> None:
    url = f"{server.url}/v1/tails/app"
    async with connect(url, params={"last_lines": "2"}, max_reconnects=0) as stream:
        start = await take(stream, 2)
        assert [e.data for e in start] == ["boot 3", "boot 4"]
        assert start[-1].id == f"{epoch(start[-1])}-{log_file.stat().st_size}"  # byte offset

        append(log_file, "live 1\nlive 2\n")
        assert [e.data for e in await take(stream, 2)] == ["live 1", "live 2"]

        # rename-rotation: a last line written just before the rename is not lost
        append(log_file, "last words of the old file\n")
        os.rename(log_file, log_file.with_suffix(".log.1"))
        log_file.write_text("new 1\n")
        rotated = await take(stream, 2)
        assert [e.data for e in rotated] == ["last words of the old file", "new 1"]
        assert epoch(rotated[1]) != epoch(rotated[0]), "a new file is a new epoch"
        new_1 = rotated[1]

        # truncation in place: announced, then the file is read from its start
        append(log_file, "new 2\n")
        assert [e.data for e in await take(stream, 1)] == ["new 2"]
        log_file.write_text("")
        [reset] = await take(stream, 1)
        assert isinstance(reset, ResetEvent) and reset.reason == "retention"
        assert reset.id == f"{epoch(new_1)}-0"
        append(log_file, "after truncate\n")
        assert [e.data for e in await take(stream, 1)] == ["after truncate"]

    # resume on a new connection after an id of the current file: the next line
    append(log_file, "next 1\nnext 2\n")
    async with connect(url, last_event_id=f"{epoch(new_1)}-15", max_reconnects=0) as stream:
        assert [e.data for e in await take(stream, 2)] == ["next 1", "next 2"]
    # an id of the rotated-away file: a reset, then the current file from its start
    async with connect(url, last_event_id=start[0].id, max_reconnects=0) as stream:
        got = await take(stream, 2)
        assert isinstance(got[0], ResetEvent) and got[0].reason == "epoch"
        assert got[1].data == "after truncate"


async def test_only_allow_listed_names_are_reachable(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        assert (await http.get("/v1/tails")).json() == {"tails": ["app"]}
        for path in (
            "/v1/tails/nope",
            "/v1/tails/..%2F..%2F..%2Fetc%2Fpasswd",
            "/v1/tails/app.log",
            "/v1/tails/%2e%2e",
        ):
            response = await http.get(path)
            assert response.status_code == 404, path
            assert response.headers["content-type"] == "application/json", path
            assert "root:" not in response.text
        bad = await http.get("/v1/tails/app", params={"last_lines": "many"})
        assert bad.status_code == 400 and orjson.loads(bad.content)["error"]["message"]
