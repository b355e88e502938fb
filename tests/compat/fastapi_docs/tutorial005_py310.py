# FastAPI's docs, docs_src/server_sent_events/tutorial005_py310.py, unchanged
# (MIT License, (c) 2018 Sebastián Ramírez): imported as it is and, with only the
# `fastapi.sse` import changed, against mianzhang.compat.fastapi_sse.
from collections.abc import AsyncIterable

from fastapi import FastAPI
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel

app = FastAPI()


class Prompt(BaseModel):
    text: str


@app.post("/chat/stream", response_class=EventSourceResponse)
async def stream_chat(prompt: Prompt) -> AsyncIterable[ServerSentEvent]:
    words = prompt.text.split()
    for word in words:
        yield ServerSentEvent(data=word, event="token")
    yield ServerSentEvent(raw_data="[DONE]", event="done")
