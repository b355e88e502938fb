"""Request heads of the fast upstream client (``mianzhang.llm._upstream_request``): the
origin of ``base_url``, the path prefix, the header block, and what is refused. No I/O."""

from __future__ import annotations

import pytest

from mianzhang.llm._upstream_request import UpstreamTarget


def test_the_head_carries_the_prefix_host_headers_and_length() -> None:
    target = UpstreamTarget(
        "https://api.example.test/v1/",
        {"Authorization": "Bearer k", "Content-Length": "9", "Transfer-Encoding": "chunked"},
    )
    assert (target.url, target.host, target.port, target.tls) == (
        "https://api.example.test/v1",
        "api.example.test",
        443,
        True,
    )
    assert target.head("POST", "/messages", 12) == (
        b"POST /v1/messages HTTP/1.1\r\n"
        b"host: api.example.test\r\n"
        b"user-agent: mianzhang\r\n"
        b"authorization: Bearer k\r\n"
        b"content-length: 12\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("url", "host_header", "port"),
    [
        ("http://127.0.0.1:8080", b"host: 127.0.0.1:8080\r\n", 8080),
        ("http://[::1]:9000/v1", b"host: [::1]:9000\r\n", 9000),
        ("http://example.test:80", b"host: example.test\r\n", 80),  # default port left out
    ],
)
def test_the_host_header_names_a_non_default_port(url: str, host_header: bytes, port: int) -> None:
    target = UpstreamTarget(url)
    assert target.port == port and not target.tls
    assert host_header in target.head("POST", "/x", 0)


def test_a_given_header_replaces_the_default_one() -> None:
    head = UpstreamTarget("http://up.test", {"User-Agent": "mine"}).head("POST", "/x", 0)
    assert b"user-agent: mine\r\n" in head and b"mianzhang" not in head


@pytest.mark.parametrize(
    "headers",
    [{"x-a": "1\r\nx-injected: 2"}, {"bad:name": "1"}, {"": "1"}, {"x-nul": "a\0b"}],
)
def test_headers_that_could_split_the_head_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="invalid header"):
        UpstreamTarget("http://up.test", headers)


@pytest.mark.parametrize("url", ["ftp://up.test", "http://", "up.test/v1"])
def test_only_http_and_https_urls_with_a_host(url: str) -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        UpstreamTarget(url)
