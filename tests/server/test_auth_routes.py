"""API keys and scopes on the server's route groups; anonymous only where settings allow."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from mianzhang.auth import generate_api_key, hash_api_key
from mianzhang.server import Settings, create_app

LLM_KEY = generate_api_key()
ALL_KEY = generate_api_key()


def _settings(**auth: object) -> Settings:
    return Settings(files={"enabled": False}, auth=auth)  # type: ignore[arg-type]


@pytest.fixture
def keyed() -> Iterator[TestClient]:
    settings = _settings(
        api_keys={
            "llm-only": {"digest": hash_api_key(LLM_KEY), "scopes": ["llm"]},
            "admin": {"digest": hash_api_key(ALL_KEY), "scopes": ["*"]},
        }
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_the_embedded_default_allows_anonymous_local_use() -> None:
    with TestClient(create_app(_settings())) as client:
        assert client.get("/v1/models").status_code == 200
        assert client.get("/v1/streams/none").status_code == 404  # reached the route


def test_configured_keys_turn_anonymous_access_off(keyed: TestClient) -> None:
    response = keyed.get("/v1/models")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["type"] == "authentication_error"  # OpenAI's shape
    assert response.json()["error"]["code"] == "unauthorized"


def test_a_key_reaches_only_its_scopes(keyed: TestClient) -> None:
    llm = {"Authorization": f"Bearer {LLM_KEY}"}
    assert keyed.get("/v1/models", headers=llm).status_code == 200
    refused = keyed.get("/v1/streams/x", headers=llm)
    assert refused.status_code == 403
    assert "lacks scope 'streams'" in refused.json()["error"]["message"]
    admin = {"Authorization": f"Bearer {ALL_KEY}"}
    assert keyed.get("/v1/streams/x", headers=admin).status_code == 404


def test_unknown_and_malformed_credentials_are_401(keyed: TestClient) -> None:
    assert keyed.get("/v1/models", headers={"Authorization": "Bearer mz_nope"}).status_code == 401
    basic = keyed.get("/v1/models", headers={"Authorization": "Basic abc"})
    assert basic.status_code == 401


def test_anonymous_can_be_forced_on_with_keys(keyed: TestClient) -> None:
    settings = _settings(
        api_keys={"admin": {"digest": hash_api_key(ALL_KEY), "scopes": ["*"]}}, anonymous=True
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/models").status_code == 200


def test_ops_routes_need_no_credentials(keyed: TestClient) -> None:
    assert keyed.get("/healthz").status_code == 200
    assert keyed.get("/readyz").status_code == 200
    assert keyed.get("/metrics").status_code == 200
