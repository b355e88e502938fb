"""Job routes in-process (the app's own lifespan, the in-process pool, the demo model): 202 and
links, status, the SSE events and their resume, cancel, refusals as JSON before anything runs,
the ``jobs`` scope. Real processes (Redis, workers, SIGKILL) are in ``tests/e2e``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mianzhang._sse import ServerSentEvent, SSEDecoder
from mianzhang.auth import generate_api_key, hash_api_key
from mianzhang.server import Settings, create_app
from tests._support.wait import eventually_sync

JOBS = generate_api_key()
FILES = generate_api_key()
FAST = {"demo": {"provider": "demo", "ttft": 0, "token_delay": 0.001, "tokens": 8}}
SLOW = {"demo": {"provider": "demo", "ttft": 0, "token_delay": 0.05, "tokens": 1000}}
TEXT = "\n\n".join(f"Paragraph {i} tells one more thing. " * 3 for i in range(4))


def make_client(tmp_path: Path, **overrides: Any) -> TestClient:
    values: dict[str, Any] = {
        "web": False,
        "files": {"directory": tmp_path / "files", "fsync": False},
        "llm": {"models": FAST},
    }
    values.update(overrides)
    return TestClient(create_app(Settings(**values)))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path) as http:
        yield http


def read_events(http: TestClient, url: str, headers: dict[str, str] | None = None) -> Any:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    with http.stream("GET", url, headers=headers or {}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for chunk in response.iter_bytes():
            events += decoder.decode(chunk)
    return events


def reaches(http: TestClient, job_id: str, state: str) -> None:
    """Wait (bounded) until the job's state is ``state``."""
    eventually_sync(
        lambda: http.get(f"/v1/jobs/{job_id}").json()["state"] == state,
        timeout=20,
        interval=0.02,
        message=f"job {job_id} never reached {state}",
    )


def test_submit_answers_202_with_links_and_the_events_end_with_the_result(
    client: TestClient,
) -> None:
    got = client.post(
        "/v1/jobs", json={"type": "summarize", "input": {"text": TEXT, "chunk_chars": 200}}
    )
    assert got.status_code == 202, got.text
    job = got.json()
    job_id = job["id"]
    assert job["state"] == "queued" and job["type"] == "summarize" and "input" not in job
    assert got.headers["location"] == f"/v1/jobs/{job_id}"
    assert job["links"] == {
        "self": f"/v1/jobs/{job_id}",
        "events": f"/v1/jobs/{job_id}/events",
        "cancel": f"/v1/jobs/{job_id}/cancel",
    }
    events = read_events(client, job["links"]["events"])
    kinds = [e.event for e in events]
    assert kinds[:2] == ["state", "state"] and kinds[-1] == "complete"
    assert kinds.count("partial") == 5  # 4 chunks + 1 combining call
    ids = [e.id for e in events]
    assert len(set(ids)) == len(ids) and all(ids)
    final = client.get(job["links"]["self"]).json()
    assert final["state"] == "succeeded" and final["progress"] == 100
    assert final["result"]["chunks"] == 4 and final["result"]["summary"]
    assert final["input"]["text"] == TEXT
    # a reader resuming after the 3rd event gets exactly the rest
    rest = read_events(client, job["links"]["events"], {"Last-Event-ID": ids[2]})
    assert [e.id for e in rest] == ids[3:]
    rest = read_events(client, f"{job['links']['events']}?last_event_id={ids[-2]}")
    assert [e.id for e in rest] == ids[-1:]
    # read to the end: 204, so EventSource stops reconnecting
    done = client.get(job["links"]["events"], headers={"Last-Event-ID": ids[-1]})
    assert done.status_code == 204


def test_recent_jobs_newest_first_without_input(client: TestClient) -> None:
    ids = [
        client.post("/v1/jobs", json={"type": "summarize", "input": {"text": f"t{i}"}}).json()["id"]
        for i in range(3)
    ]
    listed = client.get("/v1/jobs?limit=2").json()["jobs"]
    assert [j["id"] for j in listed] == ids[:0:-1]
    assert all("input" not in j and j["links"]["self"].endswith(j["id"]) for j in listed)


def test_checksum_of_an_uploaded_file(client: TestClient) -> None:
    data = b"one\ntwo\nthree\n" * 1000
    file_id = client.put("/v1/files/lines.txt", content=data).json()["id"]
    got = client.post("/v1/jobs", json={"type": "checksum", "input": {"file": file_id}})
    assert got.status_code == 202, got.text
    events = read_events(client, got.json()["links"]["events"])
    assert events[-1].event == "complete"
    result = client.get(got.json()["links"]["self"]).json()["result"]
    assert result["lines"] == 3000 and result["size"] == len(data)
    assert result["matches_upload"] is True


@pytest.mark.parametrize(
    ("body", "status", "problem"),
    [
        ({"type": "nope"}, 400, None),
        ({"type": "summarize", "input": {}}, 400, "text"),
        ({"type": "summarize", "input": {"text": "x", "chunk_chars": 1}}, 400, "chunk_chars"),
        ({"type": "summarize", "input": {"text": "x", "model": "nope"}}, 404, None),
        ({"type": "checksum", "input": {"file": "0" * 32}}, 404, None),
        ({"type": "checksum", "input": {"file": "../etc/passwd"}}, 400, "file"),
        ({"input": {}}, 400, "type"),
        ({"type": "summarize", "extra": 1}, 400, "extra"),
    ],
)
def test_refusals_are_json_and_store_nothing(
    client: TestClient, body: dict[str, Any], status: int, problem: str | None
) -> None:
    got = client.post("/v1/jobs", json=body)
    assert got.status_code == status, got.text
    error = got.json()["error"]
    assert error["type"] == {400: "invalid_request", 404: "not_found"}[status], error
    assert error["message"]
    if problem is not None:  # invalid input lists the fields at fault
        assert problem in [p["loc"] for p in error["problems"]], error
    assert client.get("/v1/jobs").json()["jobs"] == []


def test_malformed_json_and_unknown_ids(client: TestClient) -> None:
    got = client.post(
        "/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert got.status_code == 400 and got.json()["error"]["type"] == "invalid_request"
    for path in ("/v1/jobs/job_0123456789abcdef", "/v1/jobs/job_%2E%2E", "/v1/jobs/x/events"):
        missing = client.get(path)
        assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"
    assert client.post("/v1/jobs/job_0123456789abcdef/cancel").status_code == 404


def test_cancel_running_then_again_and_after_success(tmp_path: Path) -> None:
    with make_client(tmp_path, llm={"models": SLOW}) as http:
        job = http.post("/v1/jobs", json={"type": "summarize", "input": {"text": "x"}}).json()
        reaches(http, job["id"], "running")
        asked = http.post(job["links"]["cancel"])
        assert asked.status_code in (200, 202) and asked.json()["cancel_requested"] is True
        reaches(http, job["id"], "cancelled")
        events = read_events(http, job["links"]["events"])
        assert events[-1].event == "state" and '"cancelled"' in events[-1].data
        assert http.post(job["links"]["cancel"]).status_code == 200  # idempotent
    with make_client(tmp_path) as http:
        job = http.post("/v1/jobs", json={"type": "summarize", "input": {"text": "x"}}).json()
        reaches(http, job["id"], "succeeded")
        late = http.post(job["links"]["cancel"])
        assert late.status_code == 409 and late.json()["error"]["type"] == "conflict"


def test_full_queue_is_503_with_retry_after(tmp_path: Path) -> None:
    jobs = {"concurrency": 1, "max_queued": 1}
    with make_client(tmp_path, llm={"models": SLOW}, jobs=jobs) as http:
        body = {"type": "summarize", "input": {"text": "x"}}
        first = http.post("/v1/jobs", json=body).json()
        reaches(http, first["id"], "running")
        assert http.post("/v1/jobs", json=body).status_code == 202  # waits in the queue
        full = http.post("/v1/jobs", json=body)
        assert full.status_code == 503 and full.headers["retry-after"] == "1"
        assert full.json()["error"]["type"] == "unavailable"


def test_the_jobs_scope_guards_every_route(tmp_path: Path) -> None:
    auth = {
        "api_keys": {
            "jobs": {"digest": hash_api_key(JOBS), "scopes": ["jobs"]},
            "files": {"digest": hash_api_key(FILES), "scopes": ["files:read", "files:write"]},
        }
    }
    with make_client(tmp_path, auth=auth) as http:
        body = {"type": "summarize", "input": {"text": "x"}}
        assert http.post("/v1/jobs", json=body).status_code == 401
        assert http.get("/v1/jobs").status_code == 401
        wrong = http.post("/v1/jobs", json=body, headers={"Authorization": f"Bearer {FILES}"})
        assert wrong.status_code == 403
        ok = {"Authorization": f"Bearer {JOBS}"}
        job = http.post("/v1/jobs", json=body, headers=ok).json()
        for path in (job["links"]["self"], job["links"]["events"]):
            assert http.get(path).status_code == 401
        assert http.post(job["links"]["cancel"]).status_code == 401
        assert read_events(http, job["links"]["events"], ok)[-1].event == "complete"
