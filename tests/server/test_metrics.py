"""``/metrics`` counts what the issue names: streams, events and bytes sent, resumes, resets,
jobs by state (parsed with prometheus_client's own parser)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from mianzhang import SSEDecoder
from mianzhang.server import Settings, create_app
from tests._support.wait import eventually_sync


def _samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_stream_and_job_metrics_move_with_the_traffic() -> None:
    settings = Settings(files={"enabled": False})  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as client:
        ticks = client.get("/v1/demo/ticks", params={"interval": 0.05, "count": 3})
        assert len(SSEDecoder().decode(ticks.content)) == 3
        created = client.post(
            "/v1/llm/generations", json={"messages": [{"role": "user", "content": "hi"}]}
        ).json()
        first = SSEDecoder().decode(client.get(created["stream_url"]).content)
        again = client.get(created["stream_url"], headers={"Last-Event-ID": "lost-1"})
        assert SSEDecoder().decode(again.content)[0].event == "reset"
        job = client.post("/v1/jobs", json={"type": "summarize", "input": {"text": "one. two."}})
        assert job.status_code == 202
        job_url = f"/v1/jobs/{job.json()['id']}"
        eventually_sync(lambda: client.get(job_url).json()["state"] == "succeeded", timeout=30)
        samples = _samples(client)
    assert samples[("mianzhang_streams_opened_total", ())] >= 3
    assert samples[("mianzhang_stream_events_sent_total", ())] >= 3 + len(first)
    assert samples[("mianzhang_stream_bytes_sent_total", ())] > len(ticks.content)
    assert samples[("mianzhang_stream_resumes_total", ())] == 1
    assert (
        sum(v for (name, _), v in samples.items() if name == "mianzhang_stream_resets_total") == 1
    )
    assert samples[("mianzhang_jobs_submitted_total", ())] == 1
    assert samples[("mianzhang_jobs_finished_total", (("state", "succeeded"),))] == 1
    assert samples[("mianzhang_jobs_running", ())] == 0
    assert samples[("mianzhang_asyncio_tasks", ())] >= 1  # at least the request's own
    assert samples[("process_open_fds", ())] > 0
    assert samples[("process_resident_memory_bytes", ())] > 0
