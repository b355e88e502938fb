"""The Anthropic Messages API <-> gateway translation tables, both directions. Data only.

Every translation between Anthropic's vocabulary and the gateway's (OpenAI's: chat messages,
``finish_reason``, tool-call deltas) is looked up here, so a mapping is changed in one place
and tested both ways (``tests/llm/test_anthropic_tables.py``):

* stop reasons: :data:`FINISH_REASONS` (Anthropic ``stop_reason`` -> gateway
  ``finish_reason``) and :data:`STOP_REASONS` (back);
* errors: :data:`ERROR_TYPES` (HTTP status -> Anthropic error ``type``),
  :data:`ERROR_STATUSES` (back: the status an in-stream ``error`` event stands for) and
  :data:`UPSTREAM_STATUSES` (the status the gateway answers for an upstream's status);
* tools: :data:`TOOL_CHOICES` (Anthropic ``tool_choice.type`` -> OpenAI ``tool_choice``) and
  :data:`OPENAI_TOOL_CHOICES` (back);
* content: :data:`USER_BLOCKS` / :data:`ASSISTANT_BLOCKS` (request content block kinds per
  role -> what they become in an OpenAI chat message), :data:`OPENAI_PARTS` (OpenAI content
  part -> Anthropic block), :data:`STREAM_BLOCKS` (streamed block kind -> its delta type,
  the delta's text field and the :class:`~mianzhang.llm.Chunk` field it maps to);
* reasoning: :data:`EFFORT_BUDGETS` (OpenAI ``reasoning_effort`` -> Anthropic
  ``thinking.budget_tokens``) and :func:`effort_for_budget` (back).

Lossy on purpose (no equivalent on the other side), documented where it happens:
``stop_sequence``, ``pause_turn`` and ``refusal`` fold into OpenAI reasons; ``thinking`` /
``redacted_thinking`` blocks of earlier assistant turns and ``is_error`` / ``cache_control``
are not carried into OpenAI-shaped messages.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ASSISTANT_BLOCKS",
    "CANCEL_ERRORS",
    "EFFORT_BUDGETS",
    "ERROR_STATUSES",
    "ERROR_TYPES",
    "FINISH_REASONS",
    "OPENAI_PARTS",
    "OPENAI_TOOL_CHOICES",
    "OUTPUT_EFFORTS",
    "STOP_REASONS",
    "STREAM_BLOCKS",
    "TOOL_CHOICES",
    "UPSTREAM_STATUSES",
    "USER_BLOCKS",
    "effort_for_budget",
    "error_type_for_status",
    "finish_reason_for",
    "status_for_error_type",
    "stop_reason_for",
    "upstream_status_for",
]

# -- stop reasons -------------------------------------------------------------------------------
FINISH_REASONS: Final[dict[str, str]] = {
    "end_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "stop_sequence": "stop",  # OpenAI reports a matched stop sequence as "stop" too
    "pause_turn": "stop",  # server tools only (never asked for by the gateway)
    "refusal": "content_filter",
    "model_context_window_exceeded": "length",
}
"""Anthropic ``stop_reason`` -> gateway ``finish_reason`` (an unknown reason gives ``stop``)."""

STOP_REASONS: Final[dict[str, str]] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
"""Gateway ``finish_reason`` -> Anthropic ``stop_reason`` (an unknown reason gives
``end_turn``). The gateway's events carry no matched stop sequence, so ``stop_sequence`` is
never produced (see the surface's module docstring)."""


def finish_reason_for(stop_reason: str | None) -> str:
    """The gateway finish reason for an Anthropic ``stop_reason``."""
    return FINISH_REASONS.get(stop_reason or "", "stop")


def stop_reason_for(finish_reason: str) -> str:
    """The Anthropic ``stop_reason`` for a gateway finish reason."""
    return STOP_REASONS.get(finish_reason, "end_turn")


# -- errors -------------------------------------------------------------------------------------
ERROR_TYPES: Final[dict[int, str]] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    499: "cancelled_error",  # mianzhang's: a generation stopped before its end
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
"""HTTP status -> Anthropic error ``type``. Other 4xx are ``invalid_request_error`` (as
Anthropic documents), other 5xx ``api_error``."""

ERROR_STATUSES: Final[dict[str, int]] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "conflict_error": 409,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "cancelled_error": 499,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
"""Anthropic error ``type`` -> the HTTP status it stands for (an ``error`` event arrives on a
200 response: this is the status the same error has outside a stream). Unknown: 500."""

UPSTREAM_STATUSES: Final[dict[int, int]] = {
    400: 400,
    404: 404,
    413: 413,
    422: 400,
    429: 429,
    503: 503,
    504: 504,
    529: 529,
}
"""An upstream's HTTP status -> the status the gateway answers with. Statuses about the
request (400, 404, 413), the load (429, 503, 529) or time (504) are kept so Anthropic clients
react as they would to Anthropic; anything else (the upstream's credentials, its internal
errors) is the gateway's problem, not the caller's: 502 ``api_error``."""

CANCEL_ERRORS: Final[dict[str, int]] = {"shutdown": 529}
"""Cancel reason -> the status (hence error type) a cancelled generation ends with. A
generation cut by a shutdown ends ``overloaded_error`` (retry: another instance serves it);
any other reason (``stopped``, ``abandoned``, ...) ``cancelled_error`` (499: not retried)."""


def error_type_for_status(status: int) -> str:
    """Anthropic's error ``type`` for an HTTP status."""
    found = ERROR_TYPES.get(status)
    if found is not None:
        return found
    return "api_error" if status >= 500 else "invalid_request_error"


def status_for_error_type(error_type: str) -> int:
    """The HTTP status an Anthropic error ``type`` stands for (500 when unknown)."""
    return ERROR_STATUSES.get(error_type, 500)


def upstream_status_for(status: int) -> int:
    """The status the gateway answers with when its upstream answered ``status``."""
    return UPSTREAM_STATUSES.get(status, 502)


# -- tools --------------------------------------------------------------------------------------
TOOL_CHOICES: Final[dict[str, str]] = {"auto": "auto", "any": "required", "none": "none"}
"""Anthropic ``tool_choice.type`` -> OpenAI ``tool_choice`` (``tool`` becomes
``{"type": "function", "function": {"name": ...}}``; ``disable_parallel_tool_use: true``
becomes ``parallel_tool_calls: false``)."""

OPENAI_TOOL_CHOICES: Final[dict[str, str]] = {v: k for k, v in TOOL_CHOICES.items()}
"""OpenAI string ``tool_choice`` -> Anthropic ``tool_choice.type``."""

# -- content ------------------------------------------------------------------------------------
USER_BLOCKS: Final[dict[str, str]] = {
    "text": "text",
    "image": "image_url",
    "document": "file",  # base64 PDF -> file part; plain-text document -> text part
    "tool_result": "tool",  # a `role: tool` message, before the user's other content
}
"""Content block kinds a ``user`` turn may hold -> what they become in OpenAI messages."""

ASSISTANT_BLOCKS: Final[dict[str, str | None]] = {
    "text": "content",
    "tool_use": "tool_calls",
    "thinking": None,  # not forwarded: no OpenAI equivalent, signatures cannot be re-checked
    "redacted_thinking": None,
}
"""Content block kinds an ``assistant`` turn may hold -> the OpenAI assistant message field
they become (``None``: accepted, not forwarded — Anthropic itself drops the thinking of
earlier turns from the context)."""

OPENAI_PARTS: Final[dict[str, str]] = {
    "text": "text",
    "image_url": "image",
    "file": "document",
}
"""OpenAI user content part type -> Anthropic content block type (other parts, such as
``input_audio``, cannot be sent to an Anthropic upstream)."""

STREAM_BLOCKS: Final[dict[str, tuple[str, str, str]]] = {
    "thinking": ("thinking_delta", "thinking", "reasoning"),
    "text": ("text_delta", "text", "text"),
    "tool_use": ("input_json_delta", "partial_json", "tool_calls"),
}
"""Streamed content block kind -> (delta type, the delta's text field, the
:class:`~mianzhang.llm.Chunk` field). In a chunk carrying several, blocks are opened in this
order: thinking, then text, then tool calls."""

# -- reasoning ----------------------------------------------------------------------------------
EFFORT_BUDGETS: Final[dict[str, int]] = {
    "minimal": 1024,
    "low": 1024,
    "medium": 4096,
    "high": 16384,
}
"""OpenAI ``reasoning_effort`` -> Anthropic ``thinking.budget_tokens`` (1024 is Anthropic's
minimum)."""

OUTPUT_EFFORTS: Final[dict[str, str]] = {
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
    "max": "high",
}
"""Anthropic ``output_config.effort`` -> OpenAI ``reasoning_effort``."""

_EFFORT_THRESHOLDS: Final = ((2048, "low"), (8192, "medium"))


def effort_for_budget(budget_tokens: int) -> str:
    """The OpenAI ``reasoning_effort`` for an Anthropic thinking budget: below 2048 ``low``,
    below 8192 ``medium``, else ``high`` (so each :data:`EFFORT_BUDGETS` value maps back to its
    effort, ``minimal`` excepted)."""
    for limit, effort in _EFFORT_THRESHOLDS:
        if budget_tokens < limit:
            return effort
    return "high"
