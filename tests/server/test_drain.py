"""While the instance drains: readiness is false, new generations are refused with 503 and a
retry hint, and a stream opened now ends at once with a reconnect event."""

from __future__ import annotations

from fastapi.testclient import TestClient

from mianzhang import SSEDecoder
from mianzhang.server import Settings, create_app


def test_a_draining_instance_refuses_new_work_and_sends_readers_elsewhere() -> None:
    settings = Settings(files={"enabled": False})  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
        client.app.state.services.supervisor.drain()  # type: ignore[attr-defined]
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "draining"
        body = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
        refused = client.post("/v1/chat/completions", json=body)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "draining"  # OpenAI's shape under /v1/
        assert client.get("/v1/models").status_code == 200  # reads still work
        stream = client.get("/v1/demo/ticks", params={"interval": 1, "count": 100})
        events = SSEDecoder().decode(stream.content)
        assert events[-1].event == "reconnect"
        assert events[-1].retry is not None
        assert len(events) <= 2  # ended at once, not after 100 s
