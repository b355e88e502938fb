"""Subscriber JWTs on a real server: HS256 and RS256 keys (the RSA pair made here), every
refusal answered 401/403 with a JSON body before any stream starts, and the accepted
tokens (header or cookie) get the stream. Publishers need an API key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from mianzhang.auth import generate_api_key, hash_api_key
from tests._support.procs import ServerProcess, uvicorn_process
from tests.channels._tokens import (
    OTHER_SECRET,
    SECRET,
    RSAKeys,
    grant,
    hs256,
    hs256_with_public_key,
    rs256,
    rsa_keys,
    unsigned,
)

pytestmark = pytest.mark.e2e

PUBLISHER = generate_api_key()


@dataclass
class Hub:
    server: ServerProcess
    rsa: RSAKeys
    other_rsa: RSAKeys

    @property
    def events(self) -> str:
        return f"{self.server.url}/v1/channels/news/events"


@pytest.fixture(scope="module")
def hub() -> Iterator[Hub]:
    keys, other = rsa_keys(), rsa_keys()
    env = {
        "MIANZHANG_FILES__ENABLED": "false",
        "MIANZHANG_WEB": "false",
        "MIANZHANG_AUTH__JWT_KEYS": json.dumps(
            [
                {"algorithm": "HS256", "key": SECRET},
                {"algorithm": "RS256", "key": keys.public_pem},
            ]
        ),
        "MIANZHANG_AUTH__API_KEYS": json.dumps(
            {"pub": {"digest": hash_api_key(PUBLISHER), "scopes": ["channels:publish"]}}
        ),
    }
    with uvicorn_process("mianzhang.server:create_app", factory=True, env=env) as server:
        published = httpx.post(
            f"{server.url}/v1/channels/news/publish",
            json={"data": "hello"},
            headers={"Authorization": f"Bearer {PUBLISHER}"},
            timeout=10,
        )
        assert published.status_code == 201, published.text
        yield Hub(server, keys, other)


def header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"mianzhang_token={token}"}


def refusals(hub: Hub) -> list[tuple[str, dict[str, str], int]]:
    ok = grant("news")
    return [
        ("no token", {}, 401),
        ("alg none", header(unsigned(ok)), 401),
        ("alg none in the cookie", cookie(unsigned(ok)), 401),
        ("HS256 expired", header(hs256(grant("news", expires_in=-120))), 401),
        ("RS256 expired", header(rs256(grant("news", expires_in=-120), hub.rsa.private_pem)), 401),
        ("HS256 wrong key", header(hs256(ok, secret=OTHER_SECRET)), 401),
        ("RS256 wrong key", header(rs256(ok, hub.other_rsa.private_pem)), 401),
        (
            "HS256 signed with the RS256 public key",
            header(hs256_with_public_key(ok, hub.rsa.public_pem)),
            401,
        ),
        ("HS256 without exp", header(hs256({"mianzhang": {"subscribe": ["news"]}})), 401),
        ("malformed: not a JWT", header("not-a-jwt"), 401),
        ("malformed: three garbage parts", header("aaa.bbb.ccc"), 401),
        ("malformed: cookie", cookie("%%%"), 401),
        ("malformed: not Bearer", {"Authorization": "Basic dXNlcjpwYXNz"}, 401),
        ("HS256 wrong channel", header(hs256(grant("sports"))), 403),
        ("RS256 wrong channel", cookie(rs256(grant("news-2", "user/*"), hub.rsa.private_pem)), 403),
        ("HS256 no grants at all", header(hs256({"exp": ok["exp"]})), 403),
        ("publisher API key", header(PUBLISHER), 403),
    ]


def test_every_refusal_is_json_before_any_stream(hub: Hub) -> None:
    cases = refusals(hub)
    with httpx.Client(timeout=10) as client:
        for what, headers, status in cases:
            with client.stream("GET", hub.events, headers=headers) as response:
                body = response.read()
                assert response.status_code == status, (what, body)
                assert response.headers["content-type"] == "application/json", what
                error = json.loads(body)["error"]
                assert error["type"] in ("unauthorized", "forbidden") and error["message"], what
                if status == 401:
                    assert response.headers["www-authenticate"] == "Bearer", what
    assert len(cases) == 17


def first_event(client: httpx.Client, url: str, headers: dict[str, str]) -> str:
    with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                return line.removeprefix("data: ")
    raise AssertionError("the stream ended without an event")


def test_valid_tokens_get_the_stream(hub: Hub) -> None:
    with httpx.Client(timeout=10) as client:
        hs = hs256(grant("news"))
        rs = rs256(grant("user/*", "news"), hub.rsa.private_pem)
        assert first_event(client, hub.events, {"Authorization": f"Bearer {hs}"}) == "hello"
        assert first_event(client, hub.events, {"Cookie": f"mianzhang_token={rs}"}) == "hello"


def test_publishing_needs_the_api_key(hub: Hub) -> None:
    url = f"{hub.server.url}/v1/channels/news/publish"
    token = hs256(grant("news"))
    with httpx.Client(timeout=10) as client:
        assert client.post(url, json={"data": 1}).status_code == 401
        assert (
            client.post(url, json={"data": 1}, headers={"Authorization": f"Bearer {token}"})
        ).status_code == 401
