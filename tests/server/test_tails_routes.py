"""Tail routes in-process: only allow-listed names are reachable, refusals are JSON before
any stream, the ``tails`` scope guards them. The streams are read over real HTTP in
``tests/e2e/test_tails_http.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mianzhang.auth import generate_api_key, hash_api_key
from mianzhang.server import Settings, create_app

TAILS = generate_api_key()
STREAMS = generate_api_key()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    app = tmp_path / "app.log"
    app.write_text("a\nb\n")
    return {"app": app, "gone": tmp_path / "missing.log"}


@pytest.fixture
def client(files: dict[str, Path]) -> Iterator[TestClient]:
    settings = Settings(files={"enabled": False}, web=False, tails={"files": files})  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as http:
        yield http


def test_names_are_listed_never_paths(client: TestClient, files: dict[str, Path]) -> None:
    got = client.get("/v1/tails")
    assert got.json() == {"tails": ["app", "gone"]}
    assert str(files["app"].parent) not in got.text


@pytest.mark.parametrize(
    "path",
    [
        "/v1/tails/nope",
        "/v1/tails/app.log",
        "/v1/tails/..%2F..%2Fetc%2Fpasswd",
        "/v1/tails/%2Fetc%2Fpasswd",
        "/v1/tails/gone",  # configured, but the file does not exist
    ],
)
def test_anything_but_an_existing_allow_listed_file_is_404_json(
    client: TestClient, path: str
) -> None:
    got = client.get(path)
    assert got.status_code == 404, got.text
    assert got.headers["content-type"] == "application/json"
    assert "root:" not in got.text  # nothing of any file is ever read for these


@pytest.mark.parametrize("value", ["abc", "-1", "10001", "1e3", "9" * 50])
def test_bad_last_lines_is_400(client: TestClient, value: str) -> None:
    got = client.get(f"/v1/tails/app?last_lines={value}")
    assert got.status_code == 400 and "last_lines" in got.json()["error"]["message"]


def test_the_tails_scope_guards_the_routes(files: dict[str, Path]) -> None:
    settings = Settings(  # type: ignore[arg-type]
        files={"enabled": False},
        web=False,
        tails={"files": files},
        auth={
            "api_keys": {
                "tails": {"digest": hash_api_key(TAILS), "scopes": ["tails"]},
                "streams": {"digest": hash_api_key(STREAMS), "scopes": ["streams"]},
            }
        },
    )
    with TestClient(create_app(settings)) as http:
        assert http.get("/v1/tails/nope").status_code == 401
        refused = http.get("/v1/tails/nope", headers={"Authorization": f"Bearer {STREAMS}"})
        assert refused.status_code == 403 and "tails" in refused.json()["error"]["message"]
        allowed = http.get("/v1/tails/nope", headers={"Authorization": f"Bearer {TAILS}"})
        assert allowed.status_code == 404  # through auth, to the route
