# FastAPI's docs, docs_src/server_sent_events/tutorial003_py310.py, unchanged
# (MIT License, (c) 2018 Sebastián Ramírez): imported as it is and, with only the
# `fastapi.sse` import changed, against mianzhang.compat.fastapi_sse.
from collections.abc import AsyncIterable

from fastapi import FastAPI
from fastapi.sse import EventSourceResponse, ServerSentEvent

app = FastAPI()


@app.get("/logs/stream", response_class=EventSourceResponse)
async def stream_logs() -> AsyncIterable[ServerSentEvent]:
    logs = [
        "2025-01-01 INFO  Application started",
        "2025-01-01 DEBUG Connected to database",
        "2025-01-01 WARN  High memory usage detected",
    ]
    for log_line in logs:
        yield ServerSentEvent(raw_data=log_line)
