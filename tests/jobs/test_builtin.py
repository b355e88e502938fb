"""The built-in job types on the in-process pool: ``summarize`` through a real gateway (the demo
provider, and a provider that fails or never ends), ``checksum`` on a stored file; input
checks at submission; the registry every server and worker builds."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from mianzhang import ConfigError
from mianzhang._errors import FileNotFound, InvalidJobInput, ModelNotFound
from mianzhang.files import FileMeta, FilesService, FilesSettings, new_file_id
from mianzhang.jobs import (
    JobRecord,
    JobRunner,
    JobService,
    JobState,
    LocalJobPool,
    MemoryJobStore,
    builtin_jobs,
    job_registry,
    job_resources,
    split_text,
)
from mianzhang.jobs._summarize import summarize_plan
from mianzhang.llm import LLMService, LLMSettings
from mianzhang.log import LogEvent, MemoryEventLog
from tests._support.wait import eventually
from tests.jobs._util import events_of

FAST_DEMO = {"demo": {"provider": "demo", "ttft": 0, "token_delay": 0, "tokens": 12}}


@pytest.fixture
async def files(tmp_path: Path) -> AsyncIterator[FilesService]:
    service = FilesService(FilesSettings(directory=tmp_path / "files", fsync=False))
    yield service
    await service.aclose()


def store(files: FilesService, data: bytes, name: str = "data.txt") -> FileMeta:
    temp = files.storage.new_temp()
    with open(temp.fd, "wb", closefd=False) as handle:
        handle.write(data)
    meta = FileMeta(new_file_id(), len(data), hashlib.sha256(data).hexdigest(), name)
    files.storage.commit(temp.path, meta, fd=temp.fd)
    temp.close()
    return meta


Make = Callable[..., Any]


@pytest.fixture
async def make_service(files: FilesService) -> AsyncIterator[Make]:
    """A JobService with the built-in types, the LLM gateway built from ``models`` and files."""
    owned: list[Any] = []

    async def make(**llm_settings: Any) -> JobService:
        llm_settings.setdefault("models", FAST_DEMO)
        llm = LLMService(LLMSettings(**llm_settings), metrics_registry=CollectorRegistry())
        log = MemoryEventLog()
        store_ = MemoryJobStore()
        resources = job_resources(llm.gateway, files)
        registry = builtin_jobs()
        runner = JobRunner(registry, store_, log, resources=resources, cancel_poll=0.02)
        pool = LocalJobPool(runner, concurrency=2)
        await pool.__aenter__()
        owned.append((pool, llm, log))
        return JobService(registry, store_, log, pool, resources=resources)

    yield make
    for pool, llm, log in owned:
        await pool.__aexit__(None, None, None)
        await llm.aclose()
        await log.aclose()


def data_of(events: list[LogEvent], kind: str) -> list[Any]:
    return [json.loads(e.data) for e in events if e.event == kind]


# -- split_text ------------------------------------------------------------------------------
def test_split_prefers_paragraphs_then_sentences() -> None:
    text = "First para one. Two.\n\nSecond para.\n\n\n  Third para is a bit longer. It has two."
    assert split_text(text, 40) == [
        "First para one. Two.\n\nSecond para.",
        "Third para is a bit longer. It has two.",
    ]
    assert split_text(text, 30) == [
        "First para one. Two.",
        "Second para.",
        "Third para is a bit longer.",
        "It has two.",
    ]
    assert split_text("  short  ", 100) == ["short"]
    assert split_text(" \n\n ", 10) == []
    assert split_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]


@settings(max_examples=300, deadline=None)
@given(
    text=st.lists(st.sampled_from([*"ab .!\n。", "\n\n", "word ", "  "]), max_size=150).map(
        "".join
    ),
    size=st.integers(min_value=1, max_value=60),
)
def test_split_keeps_every_character_in_order_and_bounds_chunks(text: str, size: int) -> None:
    chunks = split_text(text, size)
    assert all(0 < len(c) <= size and c == c.strip() for c in chunks)
    assert "".join("".join(c.split()) for c in chunks) == "".join(text.split())


def test_plan_counts_every_llm_call() -> None:
    assert summarize_plan(1) == [1]
    assert summarize_plan(8) == [8, 1]
    assert summarize_plan(9) == [9, 2, 1]
    assert summarize_plan(65) == [65, 9, 2, 1]


# -- summarize -------------------------------------------------------------------------------
async def test_summarize_reports_each_chunk_then_the_combined_summary(make_service: Make) -> None:
    service: JobService = await make_service()
    text = "\n\n".join(f"Paragraph {i} says something. " * 4 for i in range(10))
    rec = await service.submit("summarize", {"text": text, "chunk_chars": 200})
    assert rec.input["chunk_chars"] == 200 and rec.input["max_tokens"] == 256  # defaults filled
    events = await events_of(service, rec.id)
    chunks = split_text(text, 200)
    assert len(chunks) == 10
    partials = [p["data"] for p in data_of(events, "partial")]
    assert [(p["stage"], p["index"]) for p in partials] == [
        *(("chunk", i) for i in range(1, 11)),
        ("combine", 1),
        ("combine", 2),
        ("combine", 1),
    ]
    assert all(p["summary"].startswith("This is mianzhang's demo model") for p in partials)
    percents = [p["percent"] for p in data_of(events, "progress")]
    assert percents == sorted(percents) and percents[0] == 0 and percents[-1] == 100
    assert len({p for p in percents if 0 < p < 100}) >= 10  # one step per call at least
    result = data_of(events, "complete")[0]["result"]
    assert result["chunks"] == 10 and result["llm_calls"] == 13 and result["model"] == "demo"
    assert result["summary"] == partials[-1]["summary"]
    assert result["usage"]["completion_tokens"] == 13 * 12
    done = await service.get(rec.id)
    assert done.state is JobState.SUCCEEDED and done.result == result


async def test_summarize_single_chunk_is_one_call(make_service: Make) -> None:
    service: JobService = await make_service()
    rec = await service.submit("summarize", {"text": "Just one sentence."})
    events = await events_of(service, rec.id)
    assert len(data_of(events, "partial")) == 1
    assert data_of(events, "complete")[0]["result"]["llm_calls"] == 1


async def test_summarize_refuses_bad_input_and_unknown_model_before_storing(
    make_service: Make,
) -> None:
    service: JobService = await make_service()
    with pytest.raises(InvalidJobInput) as bad:
        await service.submit("summarize", {"text": "", "chunk_chars": 10, "extra": 1})
    locs = {p["loc"] for p in bad.value.problems}
    assert locs == {"text", "chunk_chars", "extra"}
    with pytest.raises(ModelNotFound):
        await service.submit("summarize", {"text": "hello", "model": "nope"})
    assert await service.recent() == []


async def test_a_failing_model_fails_the_job_with_its_error(make_service: Make) -> None:
    service: JobService = await make_service(
        models={
            **FAST_DEMO,
            "broken": {"provider": "openai", "upstream": "down", "upstream_model": "x"},
        },
        upstreams={"down": {"base_url": "http://127.0.0.1:9/v1"}},
        max_retries=0,
    )
    rec = await service.submit("summarize", {"text": "hello", "model": "broken"})
    events = await events_of(service, rec.id)
    assert events[-1].event == "error"
    assert json.loads(events[-1].data)["type"] == "UpstreamConnectError"
    assert (await service.get(rec.id)).state is JobState.FAILED


async def test_cancel_stops_the_generation_in_flight(make_service: Make) -> None:
    slow = {"demo": {"provider": "demo", "ttft": 0, "token_delay": 0.05, "tokens": 1000}}
    service: JobService = await make_service(models=slow)
    rec = await service.submit("summarize", {"text": "a b c", "max_tokens": 1000})

    async def running() -> bool:
        return (await service.get(rec.id)).state is JobState.RUNNING

    await eventually(running, timeout=10)
    started = time.monotonic()
    await service.cancel(rec.id)
    events = await events_of(service, rec.id)
    assert events[-1].event == "state" and json.loads(events[-1].data)["state"] == "cancelled"
    assert time.monotonic() - started < 5  # far less than the 50 s the generation would take
    assert data_of(events, "complete") == [] and data_of(events, "partial") == []


# -- checksum --------------------------------------------------------------------------------
async def test_checksum_streams_the_file_with_progress_by_bytes(
    make_service: Make, files: FilesService
) -> None:
    service: JobService = await make_service()
    data = b"".join(b"line %d\n" % i for i in range(20_000)) + b"no newline at the end"
    meta = store(files, data)
    rec = await service.submit(
        "checksum", {"file": meta.id, "chunk_size": 4096, "progress_interval": 0}
    )
    events = await events_of(service, rec.id)
    percents = [p["percent"] for p in data_of(events, "progress")]
    assert percents[0] == 0 and percents[-1] == 100 and percents == sorted(percents)
    assert len(percents) > 50  # a step per whole percent of bytes read
    result = data_of(events, "complete")[0]["result"]
    assert result == {
        "file": meta.id,
        "name": "data.txt",
        "size": len(data),
        "algorithm": "sha256",
        "digest": hashlib.sha256(data).hexdigest(),
        "lines": 20_001,
        "matches_upload": True,
    }


async def test_checksum_other_algorithm_and_the_files_routes_file_object(
    make_service: Make, files: FilesService
) -> None:
    service: JobService = await make_service()
    meta = store(files, b"a\nb\n")
    file_object = {"id": meta.id, "name": meta.name, "size": meta.size, "url": "/v1/files/x"}
    rec = await service.submit("checksum", {"file": file_object, "algorithm": "md5"})
    assert rec.input["file"] == meta.id
    events = await events_of(service, rec.id)
    result = data_of(events, "complete")[0]["result"]
    assert result["digest"] == hashlib.md5(b"a\nb\n").hexdigest()
    assert result["lines"] == 2 and result["matches_upload"] is None


async def test_checksum_refuses_missing_files_and_bad_ids(make_service: Make) -> None:
    service: JobService = await make_service()
    with pytest.raises(FileNotFound):
        await service.submit("checksum", {"file": new_file_id()})
    with pytest.raises(InvalidJobInput):
        await service.submit("checksum", {"file": "../../etc/passwd"})
    with pytest.raises(InvalidJobInput):
        await service.submit("checksum", {"file": new_file_id(), "algorithm": "crc"})


async def test_checksum_of_a_file_deleted_before_it_runs_fails_cleanly(
    make_service: Make, files: FilesService
) -> None:
    service: JobService = await make_service()
    meta = store(files, b"x")
    record = JobRecord(id="job_0000000000000001", type="checksum", input={"file": meta.id})
    await files.delete(meta.id)
    await service.log.create(record.stream)
    await service.store.create(record)
    await service.queue.put(record.id)
    events = await events_of(service, record.id)
    assert json.loads(events[-1].data)["type"] == "FileNotFound"


# -- the registry servers and workers build ----------------------------------------------------
def test_job_registry_adds_included_registries() -> None:
    registry = job_registry(["tests.e2e.apps.job_worker:registry"])
    assert {spec.name for spec in registry} == {"summarize", "checksum", "sleepy"}
    assert {spec.name for spec in builtin_jobs()} == {"summarize", "checksum"}


@pytest.mark.parametrize(
    ("path", "match"),
    [
        ("tests.nope:registry", "No module"),
        ("tests.e2e.apps.job_worker:nothing", "nothing"),
        ("tests.e2e.apps.job_worker:sleepy", "not a JobRegistry"),
    ],
)
def test_job_registry_refuses_what_it_cannot_load(path: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        job_registry([path])
