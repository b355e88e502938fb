"""The fast upstream client (``mianzhang.llm._upstream`` and its ``_upstream_*`` modules):
keep-alive pool, body framings, never reusing a half-read connection, error mapping, TLS, the
pool bound; and the provider's choice between it and httpx.

Real servers only: the fake OpenAI upstream as a uvicorn process, and small raw asyncio
servers in the test where a precise wire behaviour (framing, closing, stalling) is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mianzhang.llm import (
    ChatRequest,
    OpenAIProvider,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from mianzhang.llm._upstream import UpstreamPool, UpstreamResponse
from tests._support.procs import ServerProcess, free_port
from tests._support.wait import eventually
from tests.e2e._llm import UpstreamControl

CHAT = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True})
REQUEST = ChatRequest(messages=[{"role": "user", "content": "hi"}])


# -- fixtures and helpers ---------------------------------------------------------------------
@pytest.fixture
async def pool(upstream_proc: ServerProcess) -> AsyncIterator[UpstreamPool]:
    p = UpstreamPool(upstream_proc.url + "/v1", headers={"content-type": "application/json"})
    try:
        yield p
    finally:
        await p.aclose()


async def read_all(response: UpstreamResponse) -> bytes:
    try:
        return b"".join([part async for part in response])
    finally:
        await response.aclose()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """An asyncio TCP server on a free port running ``handler`` per connection; counts them."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.port = 0
        self.tasks: set[asyncio.Task[Any]] = set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.tasks.discard(task)
            writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def raw_server(
    handler: Handler, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[RawServer]:
    """Serve ``handler`` until the block ends; then stop listening and cancel (and await) the
    handlers still running."""
    raw = RawServer(handler)
    server = await asyncio.start_server(raw._handle, "127.0.0.1", 0, ssl=ssl_context)
    raw.port = server.sockets[0].getsockname()[1]
    try:
        yield raw
    finally:
        server.close()
        tasks = list(raw.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request (head + ``content-length`` body) off the wire; the head, lower-cased."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return head.lower()


def response(body: bytes, *headers: str) -> bytes:
    lines = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 200 OK\r\n{lines}content-length: {len(body)}\r\n\r\n".encode() + body


# -- keep-alive and framings against the real uvicorn upstream --------------------------------
async def test_keep_alive_connection_is_reused_after_a_fully_read_stream(
    pool: UpstreamPool, upstream: UpstreamControl
) -> None:
    for _ in range(3):
        res = await pool.request("POST", "/chat/completions", CHAT)
        assert res.status == 200
        assert res.headers["transfer-encoding"] == "chunked"  # an SSE stream: chunked framing
        body = await read_all(res)
        assert body.endswith(b"data: [DONE]\n\n")
        assert body.count(b"chat.completion.chunk") == 18  # role + 16 tokens + finish
    assert pool.open_connections == 1
    ports = {r["client_port"] for r in upstream.requests()}
    assert len(ports) == 1, "all three requests went over one keep-alive connection"


async def test_error_status_and_headers_come_through(
    pool: UpstreamPool, upstream: UpstreamControl
) -> None:
    upstream.plan({"status": 429, "retry_after_ms": 250})
    res = await pool.request("POST", "/chat/completions", CHAT)
    assert res.status == 429
    assert res.headers["retry-after-ms"] == "250"
    assert b"fake upstream error 429" in await read_all(res)


async def test_abandoned_stream_closes_its_connection_and_is_not_reused(
    pool: UpstreamPool, upstream: UpstreamControl
) -> None:
    upstream.plan({"tokens": 200, "token_delay": 0.02})
    res = await pool.request("POST", "/chat/completions", CHAT)
    assert b"assistant" in await anext(aiter(res))
    await res.aclose()  # mid-body
    assert pool.idle_connections == 0
    await asyncio.to_thread(upstream.wait_for, lambda rs: rs[0]["disconnected_at"] is not None)
    await read_all(await pool.request("POST", "/chat/completions", CHAT))
    first, second = upstream.requests()
    assert not first["completed"]
    assert first["client_port"] != second["client_port"]


async def test_cancelled_read_closes_the_connection(
    pool: UpstreamPool, upstream: UpstreamControl
) -> None:
    upstream.plan({"stall_after": 1, "stall": 30})
    res = await pool.request("POST", "/chat/completions", CHAT)
    body = aiter(res)
    received = b""
    while b"tok0" not in received:  # then the upstream stalls
        received += await anext(body)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await anext(body)
    await res.aclose()
    await eventually(lambda: pool.open_connections == 0, timeout=5, interval=0.005)
    await asyncio.to_thread(upstream.wait_for, lambda rs: rs[0]["disconnected_at"] is not None)


async def test_upstream_dying_mid_body_is_a_protocol_error(
    pool: UpstreamPool, upstream: UpstreamControl
) -> None:
    upstream.plan({"drop_after": 2})
    res = await pool.request("POST", "/chat/completions", CHAT)
    received = b""
    with pytest.raises(UpstreamProtocolError, match="broke off"):
        async for part in res:
            received += part
    await res.aclose()
    assert b"tok1" in received
    assert pool.open_connections == 0


# -- framings and closing against raw servers -------------------------------------------------
async def test_chunked_body_split_anywhere_is_reassembled() -> None:
    wire = b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n"

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for i in range(0, len(wire), 3):  # chunk framing split across writes
                writer.write(wire[i : i + 3])
                await writer.drain()

    async with raw_server(handler) as server:
        pool = UpstreamPool(server.url)
        try:
            assert await read_all(await pool.request("GET", "/")) == b"hello world"
            assert await read_all(await pool.request("GET", "/")) == b"hello world"
        finally:
            await pool.aclose()
    assert server.connections == 1


async def test_content_length_body_is_read_whole_and_the_connection_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(response(b'{"json": true}', "content-type: application/json"))
            await writer.drain()

    async with raw_server(handler) as server:
        pool = UpstreamPool(server.url)
        try:
            for _ in range(3):
                res = await pool.request("GET", "/")
                assert res.headers["content-length"] == "14"
                assert await read_all(res) == b'{"json": true}'
                assert pool.idle_connections == 1
        finally:
            await pool.aclose()
    assert server.connections == 1


async def test_close_delimited_body_ends_with_the_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\npart one, ")
        await writer.drain()
        writer.write(b"part two")
        await writer.drain()
        writer.close()

    async with raw_server(handler) as server:
        pool = UpstreamPool(server.url)
        try:
            assert await read_all(await pool.request("GET", "/")) == b"part one, part two"
            assert pool.idle_connections == 0
            assert await read_all(await pool.request("GET", "/")) == b"part one, part two"
        finally:
            await pool.aclose()
    assert server.connections == 2


async def test_connection_close_response_is_not_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response(b"bye", "connection: close"))
        await writer.drain()
        await reader.read()  # keeps the socket open: only the header says not to reuse it

    async with raw_server(handler) as server:
        pool = UpstreamPool(server.url)
        try:
            assert await read_all(await pool.request("GET", "/")) == b"bye"
            assert pool.idle_connections == 0
            assert await read_all(await pool.request("GET", "/")) == b"bye"
        finally:
            await pool.aclose()
    assert server.connections == 2


async def test_content_length_body_cut_short_is_a_protocol_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this")
        await writer.drain()

    async with raw_server(handler) as server:
        pool = UpstreamPool(server.url)
        try:
            res = await pool.request("GET", "/")
            assert await anext(aiter(res)) == b"only this"
            with pytest.raises(UpstreamProtocolError):
                await anext(aiter(res))
            await res.aclose()
        finally:
            await pool.aclose()


async def test_garbage_instead_of_http_is_a_protocol_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with raw_server(handler) as server:
        pool = UpstreamPool(server.url)
        try:
            with pytest.raises(UpstreamProtocolError, match="malformed"):
                await pool.request("GET", "/")
            await eventually(lambda: pool.open_connections == 0, timeout=5, interval=0.005)
        finally:
            await pool.aclose()


async def test_request_is_one_write_with_host_headers_and_body() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.read(65536))  # one read sees the whole request
        writer.write(response(b"ok"))
        await writer.drain()

    async with raw_server(handler) as server:
        pool = UpstreamPool(server.url + "/v1/", headers={"Authorization": "Bearer k"})
        try:
            await read_all(await pool.request("POST", "/chat/completions", b'{"a":1}'))
        finally:
            await pool.aclose()
    head, _, body = seen[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/chat/completions HTTP/1.1"
    assert f"host: 127.0.0.1:{server.port}".encode() in lines
    assert b"authorization: Bearer k" in lines
    assert b"content-length: 7" in lines
    assert body == b'{"a":1}'


async def test_reused_connection_closed_by_the_upstream_is_retried_on_a_new_one() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response(b"first"))
        await writer.drain()
        await read_request(reader)  # the keep-alive race: closes without answering

    async with raw_server(handler) as server:
        pool = UpstreamPool(server.url)
        try:
            assert await read_all(await pool.request("GET", "/")) == b"first"
            assert await read_all(await pool.request("GET", "/")) == b"first"
        finally:
            await pool.aclose()
    assert server.connections == 2


# -- connect errors ---------------------------------------------------------------------------
async def test_connect_refused_is_a_connect_error() -> None:
    pool = UpstreamPool(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(UpstreamConnectError, match="connect failed"):
            await pool.request("GET", "/")
        assert pool.open_connections == 0
    finally:
        await pool.aclose()


async def test_connect_timeout_covers_the_tls_handshake() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts TCP, never answers the TLS ClientHello

    async with raw_server(silent) as server:
        pool = UpstreamPool(f"https://127.0.0.1:{server.port}", connect_timeout=0.2)
        try:
            with pytest.raises(UpstreamTimeout, match="connect timed out"):
                await pool.request("GET", "/")
        finally:
            await pool.aclose()


# -- TLS --------------------------------------------------------------------------------------
def _certificate(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_https_verifies_the_certificate_and_sends_sni(tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    names: list[str] = []

    def sni(_obj: ssl.SSLObject, name: str, _ctx: ssl.SSLContext) -> None:
        names.append(name)

    server_ctx.sni_callback = sni

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(response(b"secure"))
            await writer.drain()

    async with raw_server(handler, server_ctx) as server:
        trusted = ssl.create_default_context(cafile=str(cert))
        pool = UpstreamPool(f"https://localhost:{server.port}", ssl_context=trusted)
        untrusted = UpstreamPool(f"https://localhost:{server.port}", connect_timeout=5)
        try:
            assert await read_all(await pool.request("GET", "/")) == b"secure"
            assert await read_all(await pool.request("GET", "/")) == b"secure"
            with pytest.raises(UpstreamConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusted.request("GET", "/")
        finally:
            await pool.aclose()
            await untrusted.aclose()
    assert names[0] == "localhost"
    assert server.connections == 1  # kept alive for both requests (the refused one never got in)


# -- the pool bound ---------------------------------------------------------------------------
async def test_pool_never_opens_more_than_max_connections(
    upstream_proc: ServerProcess, upstream: UpstreamControl
) -> None:
    upstream.plan(*[{"tokens": 3, "token_delay": 0.05}] * 6)
    pool = UpstreamPool(upstream_proc.url + "/v1", max_connections=2, connect_timeout=10)
    peak = 0

    async def one() -> bytes:
        nonlocal peak
        res = await pool.request("POST", "/chat/completions", CHAT)
        peak = max(peak, pool.open_connections)
        return await read_all(res)

    try:
        async with asyncio.timeout(20):
            bodies = await asyncio.gather(*(one() for _ in range(6)))
    finally:
        await pool.aclose()
    assert all(b.endswith(b"[DONE]\n\n") for b in bodies)
    assert peak == 2
    assert len({r["client_port"] for r in upstream.requests()}) == 2


async def test_a_full_pool_times_out_waiting_then_serves_once_a_connection_is_free(
    upstream_proc: ServerProcess, upstream: UpstreamControl
) -> None:
    upstream.plan({"tokens": 1000, "token_delay": 0.01})
    pool = UpstreamPool(upstream_proc.url + "/v1", max_connections=1, connect_timeout=0.2)
    try:
        held = await pool.request("POST", "/chat/completions", CHAT)
        with pytest.raises(UpstreamTimeout, match="no free connection"):
            await pool.request("POST", "/chat/completions", CHAT)
        waiting = asyncio.ensure_future(pool.request("POST", "/chat/completions", CHAT))
        try:
            await asyncio.sleep(0)  # let it start waiting for the slot
            assert not waiting.done()
            await held.aclose()  # abandoned: closed, and its slot freed
            res = await asyncio.wait_for(waiting, 5)
        finally:
            waiting.cancel()
        assert (await read_all(res)).endswith(b"[DONE]\n\n")
        assert pool.open_connections == 1
    finally:
        await pool.aclose()


async def test_idle_connections_expire(pool: UpstreamPool, upstream: UpstreamControl) -> None:
    short = UpstreamPool(pool.url, keepalive_expiry=0.05)
    try:
        await read_all(await short.request("POST", "/chat/completions", CHAT))
        assert short.idle_connections == 1
        await eventually(lambda: short.open_connections == 0, timeout=5, interval=0.005)
        await read_all(await short.request("POST", "/chat/completions", CHAT))
    finally:
        await short.aclose()
    first, second = upstream.requests()
    assert first["client_port"] != second["client_port"]


async def test_a_closed_pool_refuses_requests(pool: UpstreamPool) -> None:
    await pool.aclose()
    with pytest.raises(UpstreamConnectError, match="closed"):
        await pool.request("GET", "/models")


# -- the provider's choice of client ----------------------------------------------------------
async def test_provider_uses_the_fast_client_by_default(
    upstream_proc: ServerProcess, upstream: UpstreamControl
) -> None:
    provider = OpenAIProvider(upstream_proc.url + "/v1", api_key="sk-x")
    try:
        assert provider.client == "fast"
        for _ in range(2):
            chunks = [c async for c in provider.stream("m", REQUEST)]
            assert "".join(c.text for c in chunks) == "".join(
                f"tok{i}" if i == 0 else f" tok{i}" for i in range(16)
            )
            assert chunks[-1].usage is not None
    finally:
        await provider.aclose()
    requests = upstream.requests()
    assert requests[0]["authorization"] == "Bearer sk-x"
    assert requests[0]["client_port"] == requests[1]["client_port"]


def test_provider_picks_httpx_for_a_transport_or_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500)

    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    kinds: list[Any] = [
        OpenAIProvider("http://up.test/v1", transport=httpx.MockTransport(handler)).client,
        OpenAIProvider("http://up.test/v1", client="httpx").client,
    ]
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.internal.test")
    kinds += [
        OpenAIProvider("https://api.openai.com/v1").client,  # proxied
        OpenAIProvider("http://api.openai.com/v1").client,  # no proxy for http://
        OpenAIProvider("https://llm.internal.test/v1").client,  # exempted by NO_PROXY
        OpenAIProvider("https://localhost:8000/v1").client,
    ]
    assert kinds == ["httpx", "httpx", "httpx", "fast", "fast", "fast"]
    with pytest.raises(ValueError, match="transport"):
        OpenAIProvider("http://up.test/v1", client="fast", transport=httpx.MockTransport(handler))
