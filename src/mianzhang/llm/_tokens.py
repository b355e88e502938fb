"""Counting tokens when no tokenizer is at hand. No I/O.

Used only when an upstream reports no usage: completion tokens are then the number of chunks
that carried text (OpenAI-compatible servers send one token per chunk), and prompt tokens are
estimated here. The estimate is marked ``estimated=True`` in :class:`~mianzhang.llm.Usage`.
The same estimate answers the Messages API's ``count_tokens``
(:func:`~mianzhang.llm._anthropic_convert.estimate_input_tokens`), so the two always agree.
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson

from ._types import ChatRequest

__all__ = ["estimate_prompt_tokens", "estimate_request_tokens", "estimate_tokens"]

# Words, numbers and single punctuation marks: close to BPE counts for English prose.
_PIECE: Final = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_PER_MESSAGE: Final = 4  # role and separators, as OpenAI's cookbook counts them
_REPLY_PRIMER: Final = 3  # every reply is primed with <|start|>assistant<|message|>


def estimate_tokens(text: str) -> int:
    """An estimate of the BPE token count of ``text`` (words + punctuation marks)."""
    count = 0
    for match in _PIECE.finditer(text):
        piece = match.group()
        # long words split into several BPE tokens: one per 4 characters beyond the first 4
        count += 1 + max(0, (len(piece) - 1) // 4)
    return count


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _content_tokens(content: Any) -> int:
    """The text of a message's content: a string, or the ``text`` of its parts."""
    if isinstance(content, str):
        return estimate_tokens(content)
    if not isinstance(content, list):
        return 0
    texts = (p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return sum(estimate_tokens(text) for text in texts)


def _tool_call_tokens(calls: Any) -> int:
    """The arguments of an assistant message's ``tool_calls`` (JSON text)."""
    if not isinstance(calls, list):
        return 0
    total = 0
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        arguments = function.get("arguments") if isinstance(function, dict) else None
        if arguments:
            total += estimate_tokens(_json_text(arguments))
    return total


def estimate_prompt_tokens(messages: list[dict[str, Any]], tools: Any = None) -> int:
    """An estimate of the prompt tokens of OpenAI chat ``messages``: their text and the
    arguments of their tool calls, plus ``tools`` (the request's tool definitions, counted as
    their JSON text) when given. Messages without tool calls count their text only."""
    total = _REPLY_PRIMER
    for message in messages:
        total += _PER_MESSAGE + _content_tokens(message.get("content"))
        total += _tool_call_tokens(message.get("tool_calls"))
    if tools:
        total += estimate_tokens(_json_text(tools))
    return total


def estimate_request_tokens(request: ChatRequest) -> int:
    """:func:`estimate_prompt_tokens` of a whole request: its messages and its ``tools``."""
    return estimate_prompt_tokens(request.messages, request.params.get("tools"))
