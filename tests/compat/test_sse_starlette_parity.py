"""The same scenarios against sse-starlette 3.7.1 and ``mianzhang.compat.sse_starlette``, one
test body each, over a real uvicorn socket (``tests/compat/apps/parity_app.py``, an app that
only imports ``sse_starlette``: with ``lib=compat`` it runs after ``mianzhang.compat.install()``).

Every argument of ``EventSourceResponse`` is exercised, with ``HEAD``, WebSocket denial,
shutdown through ``AppStatus`` and SIGTERM, send and cleanup timeouts, heartbeats, separators,
compression, ``data_sender_callable`` and ``client_close_handler_callable``. Where the two
differ, the test asks ``expect`` (``tests/compat/_departures.py``) for the documented
departure, which names its section of docs/migrating-from-sse-starlette.md.
"""

from __future__ import annotations

import re
import signal
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests._support.procs import ServerProcess, uvicorn_process
from tests._support.wait import eventually_sync
from tests.compat._departures import expect

pytestmark = pytest.mark.e2e

APP = "tests.compat.apps.parity_app:app"
LIBS = ["real", "compat"]
TIMEOUT = 10.0


@pytest.fixture(scope="module", params=LIBS)
def lib(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def server(lib: str) -> Iterator[ServerProcess]:
    with uvicorn_process(APP, env={"PARITY_LIB": lib}) as proc:
        module = httpx.get(proc.url + "/_which", timeout=TIMEOUT).json()["module"]
        assert module == {"real": "sse_starlette", "compat": "mianzhang.compat.sse_starlette"}[lib]
        yield proc


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        yield client


@pytest.fixture
def key() -> str:
    return uuid.uuid4().hex


def state(http: httpx.Client, key: str) -> dict[str, Any]:
    return dict(http.get("/_state", params={"key": key}).json())


def headers_of(response: httpx.Response) -> dict[str, str]:
    return {
        k: v
        for k, v in response.headers.items()
        if k not in ("date", "server", "transfer-encoding")
    }


def sse_headers(lib: str, **extra: str) -> dict[str, str]:
    ours = {"cache-control": "no-cache", "x-accel-buffering": "no"}
    peer = {"cache-control": "no-store", "connection": "keep-alive", "x-accel-buffering": "no"}
    chosen = expect(lib, peer=peer, ours=ours, departure="headers")
    return {**chosen, "content-type": "text/event-stream; charset=utf-8", **extra}


def read_until(stream: Iterator[bytes], body: bytearray, needle: bytes) -> None:
    while needle not in body:
        body += next(stream)


EXPECTED_EVENTS = (
    "data: plain{s}{s}"
    "data: multi{s}data: line{s}data: mixed{s}data: ends{s}{s}"
    "data: {s}{s}"
    "id: 7{s}event: e{s}data: d{s}retry: 1500{s}{s}"
    ": a comment{s}{s}"
    ": c1\r\n: c2\r\nid: i\r\nevent: o\r\ndata: obj\r\n\r\n"  # events keep their own sep
    'data: {{"text":"héllo","n":[1,2.5,null]}}\r\n\r\n'
    "data: pre-encoded\n\n"
    "data: 12.5{s}{s}"
)


# -- the wire -----------------------------------------------------------------------------------
@pytest.mark.parametrize("sep", [None, "lf", "cr", "crlf"])
def test_every_kind_of_item_gives_the_same_bytes(lib: str, http: httpx.Client, sep: str) -> None:
    response = http.get("/events", params={"sep": sep} if sep else {})
    s = {None: "\r\n", "lf": "\n", "cr": "\r", "crlf": "\r\n"}[sep]
    assert response.status_code == 200
    assert response.content.decode() == EXPECTED_EVENTS.format(s=s)
    assert headers_of(response) == sse_headers(lib)


def test_status_headers_media_type_and_background(lib: str, http: httpx.Client, key: str) -> None:
    response = http.get("/custom", params={"key": key})
    assert response.status_code == 201
    assert response.content == b"data: one\r\n\r\ndata: two\r\n\r\n"
    assert response.headers["x-custom"] == "1"
    assert response.headers["cache-control"] == "public"  # the caller's wins, in both
    eventually_sync(lambda: state(http, key)["background"] == 1)


def test_sync_generators_and_data_sender_callable(http: httpx.Client) -> None:
    assert http.get("/sync").content == b"".join(b"data: sync %d\r\n\r\n" % i for i in range(3))
    assert http.get("/sender").content == b"".join(
        b"id: %d\r\ndata: item %d\r\n\r\n" % (i, i) for i in range(5)
    )


def test_compression_is_refused_and_gzip_middleware_passes_streams(http: httpx.Client) -> None:
    response = http.get("/gz/events", headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in response.headers
    assert response.content.decode() == EXPECTED_EVENTS.format(s="\r\n")


# -- HEAD and WebSocket ---------------------------------------------------------------------------
def test_head_answers_the_get_headers_without_starting_the_stream(
    lib: str, http: httpx.Client, key: str
) -> None:
    head = http.head("/head", params={"key": key})
    assert head.status_code == 200 and head.content == b""
    facts = state(http, key)
    assert facts["started"] is False
    eventually_sync(lambda: state(http, key)["background"] == 1)
    with http.stream("GET", "/head", params={"key": key}) as get:
        assert headers_of(get) == headers_of(head) == sse_headers(lib)


def test_a_websocket_scope_is_denied_with_the_response(lib: str, server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert body == b"data: e0\r\n\r\ndata: e1\r\n\r\ndata: e2\r\n\r\n"
    fields = dict(line.lower().split(b": ", 1) for line in head.split(b"\r\n")[1:])
    # we never send Connection; the WebSocket server then says its own ("close")
    connection = expect(lib, peer=b"keep-alive", ours=b"close", departure="headers")
    assert fields[b"connection"] == connection
    assert fields[b"content-type"] == b"text/event-stream; charset=utf-8"


# -- heartbeat ------------------------------------------------------------------------------------
PING = re.compile(rb": ping - \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+\+00:00\r\n\r\n")


@pytest.mark.parametrize("factory", [False, True])
def test_ping_while_idle(http: httpx.Client, key: str, factory: bool) -> None:
    params = {"key": key, "ping": "0.5", **({"factory": "1"} if factory else {})}
    body = bytearray()
    with http.stream("GET", "/idle", params=params) as response:
        stream = response.iter_raw()
        read_until(stream, body, b"data: hello\r\n\r\n")
        pings: list[bytes] = []
        while len(pings) < 2:
            body += next(stream)
            rest = bytes(body).split(b"data: hello\r\n\r\n", 1)[1]
            pings = re.findall(rb": custom ping\r\n\r\n" if factory else PING, rest)
    assert len(pings) >= 2


def test_ping_zero_sends_no_heartbeat(http: httpx.Client) -> None:
    assert http.get("/pause", params={"ping": "0"}).content == b"data: a\r\n\r\ndata: b\r\n\r\n"


def test_ping_while_data_flows(lib: str, http: httpx.Client) -> None:
    body = http.get("/busy", params={"ping": "0.5"}).content
    pings = len(PING.findall(body))
    assert body.count(b"data: tick") == 10
    if expect(lib, peer=True, ours=False, departure="heartbeat"):
        assert pings >= 2  # every `ping` seconds, data or not
    else:
        assert pings == 0  # only after `ping` idle seconds


# -- disconnect, errors ---------------------------------------------------------------------------
def test_disconnect_cancels_the_generator_and_calls_the_close_handler(
    http: httpx.Client, key: str
) -> None:
    with http.stream("GET", "/idle", params={"key": key, "close_handler": "1"}) as response:
        read_until(response.iter_raw(), bytearray(), b"data: hello")
    eventually_sync(lambda: state(http, key)["cleanups"] == 1)
    eventually_sync(lambda: state(http, key)["closed"] == [{"type": "http.disconnect"}])


def read_all(http: httpx.Client, path: str, **params: str) -> tuple[bytes, bool]:
    """The body, and whether it ended cleanly (False: the chunked body was cut)."""
    body = bytearray()
    with http.stream("GET", path, params=params) as response:
        try:
            for chunk in response.iter_raw():
                body += chunk
        except httpx.RemoteProtocolError:
            return bytes(body), False
    return bytes(body), True


def test_an_exception_after_the_headers(lib: str, http: httpx.Client) -> None:
    body, clean = read_all(http, "/fail-late")
    assert body.startswith(b"data: first\r\n\r\n")
    error = (
        b'event: error\r\ndata: {"type":"internal_error",'
        b'"message":"the stream failed on the server"}'
    )
    peer = (b"data: first\r\n\r\n", False)
    ours = (b"data: first\r\n\r\n" + error + b"\r\n\r\n", True)
    assert (body, clean) == expect(lib, peer=peer, ours=ours, departure="errors")


def test_raise_errors_is_the_switch_to_the_peers_behaviour(lib: str, http: httpx.Client) -> None:
    params = {"raise_errors": "1"} if lib == "compat" else {}
    assert read_all(http, "/fail-late", **params) == (b"data: first\r\n\r\n", False)


# -- slow readers ---------------------------------------------------------------------------------
def stalled_reader(server: ServerProcess, path: str) -> socket.socket:
    """A client that sends its request, reads the headers, then stops reading."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1024)
    return sock


def test_send_timeout_ends_a_stalled_stream(
    lib: str, server: ServerProcess, http: httpx.Client, key: str
) -> None:
    with stalled_reader(server, f"/big?key={key}&send_timeout=1"):
        eventually_sync(lambda: state(http, key)["cleanups"] == 1, timeout=30)
    if expect(lib, peer=True, ours=False, departure="send-timeout"):
        eventually_sync(lambda: "SendTimeoutError" in server.output())  # a traceback
    else:
        assert "SendTimeoutError" not in server.output()  # the stream just ended


def test_cleanup_timeout_cancels_a_hanging_cleanup(
    server: ServerProcess, http: httpx.Client, key: str
) -> None:
    path = f"/big?key={key}&send_timeout=1&cleanup_timeout=0.5&hang=1"
    with stalled_reader(server, path):
        eventually_sync(lambda: state(http, key)["cancelled"] is True, timeout=30)
    assert state(http, key)["cleanups"] == 1


# -- shutdown -------------------------------------------------------------------------------------
def test_app_status_should_exit_ends_streams_and_reset_serves_again(
    lib: str, http: httpx.Client, key: str
) -> None:
    body, clean = bytearray(), True
    with http.stream("GET", "/idle", params={"key": key}) as response:
        stream = response.iter_raw()
        read_until(stream, body, b"data: hello\r\n\r\n")
        assert http.post("/exit").json() == {"should_exit": True}
        try:
            for chunk in stream:  # the stream ends
                body += chunk
        except httpx.RemoteProtocolError:
            clean = False
        finally:
            assert http.post("/reset").json() == {"should_exit": False}
    assert clean
    farewell = expect(lib, peer=b"", ours=b"retry: ", departure="shutdown")
    assert bytes(body).split(b"data: hello\r\n\r\n", 1)[1].startswith(farewell)
    eventually_sync(lambda: state(http, key)["cleanups"] == 1)
    with http.stream("GET", "/idle", params={"key": uuid.uuid4().hex}) as again:
        read_until(again.iter_raw(), bytearray(), b"data: hello\r\n\r\n")  # served again


def test_shutdown_event_lets_the_generator_say_goodbye(http: httpx.Client, key: str) -> None:
    body = bytearray()
    with http.stream("GET", "/farewell", params={"key": key}) as response:
        stream = response.iter_raw()
        read_until(stream, body, b"data: hello\r\n\r\n")
        try:
            http.post("/exit")
            for chunk in stream:
                body += chunk
        finally:
            http.post("/reset")
    assert bytes(body) == b"data: hello\r\n\r\ndata: bye\r\n\r\n"
    assert state(http, key)["cleanups"] == 1


def test_sigterm_ends_open_streams_and_the_server_exits(lib: str, key: str) -> None:
    with uvicorn_process(APP, env={"PARITY_LIB": lib}) as proc:
        body = bytearray()
        with (
            httpx.Client(base_url=proc.url, timeout=TIMEOUT) as http,
            http.stream("GET", "/idle", params={"key": key}) as response,
        ):
            stream = response.iter_raw()
            read_until(stream, body, b"data: hello\r\n\r\n")
            proc.proc.send_signal(signal.SIGTERM)
            for chunk in stream:  # ends cleanly (a cut body raises)
                body += chunk
        # uvicorn re-raises the signal once its graceful shutdown is over
        assert proc.proc.wait(TIMEOUT) == -signal.SIGTERM
    farewell = expect(lib, peer=b"", ours=b"retry: ", departure="shutdown")
    assert bytes(body).split(b"data: hello\r\n\r\n", 1)[1].startswith(farewell)
