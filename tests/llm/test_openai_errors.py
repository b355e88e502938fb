"""Gateway errors in OpenAI's shape: the HTTP status answered before a stream starts, and the
``type``/``code``/``param`` of the error body."""

from __future__ import annotations

import pytest

from mianzhang._errors import UpstreamStreamError, UpstreamUnsupported
from mianzhang.llm import (
    GenerationCancelled,
    InvalidLLMRequest,
    LLMError,
    ModelNotFound,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
    error_payload,
    error_status,
)


def status_error(code: int) -> UpstreamStatusError:
    return UpstreamStatusError(code, f"upstream HTTP {code}", retryable=code >= 500)


@pytest.mark.parametrize(
    ("exc", "status", "type_", "code"),
    [
        (ModelNotFound("nope"), 404, "invalid_request_error", "model_not_found"),
        (InvalidLLMRequest("bad", param="messages"), 400, "invalid_request_error", None),
        (GenerationCancelled("stopped"), 499, "cancelled", "cancelled"),
        (UpstreamTimeout("slow"), 504, "upstream_error", "upstream_timeout"),
        (UpstreamConnectError("refused"), 502, "upstream_error", "upstream_connect_error"),
        (UpstreamProtocolError("cut"), 502, "upstream_error", "upstream_protocol_error"),
        (UpstreamError("boom", retryable=False), 502, "upstream_error", "upstream_error"),
        # nothing was sent: the request is the problem, not the upstream
        (
            UpstreamUnsupported("documents by URL have no equivalent"),
            400,
            "invalid_request_error",
            "unsupported_by_upstream",
        ),
        # an upstream's status: kept when it is about the request or the rate, else 502
        (status_error(400), 400, "invalid_request_error", "upstream_400"),
        (status_error(413), 413, "invalid_request_error", "upstream_413"),
        (status_error(422), 422, "invalid_request_error", "upstream_422"),
        (status_error(429), 429, "rate_limit_error", "rate_limit_exceeded"),
        (status_error(404), 404, "upstream_error", "upstream_404"),
        (status_error(401), 502, "upstream_error", "upstream_401"),
        (status_error(503), 502, "upstream_error", "upstream_503"),
    ],
)
def test_status_type_and_code(exc: LLMError, status: int, type_: str, code: str | None) -> None:
    assert error_status(exc) == status
    error = error_payload(exc)["error"]
    assert (error["type"], error["code"], error["message"]) == (type_, code, str(exc))


@pytest.mark.parametrize(
    ("error_type", "upstream_status", "status", "type_"),
    [
        ("rate_limit_error", 429, 429, "rate_limit_error"),
        ("invalid_request_error", 400, 400, "invalid_request_error"),
        ("request_too_large", 413, 413, "invalid_request_error"),
        ("overloaded_error", 529, 502, "upstream_error"),
        ("api_error", 500, 502, "upstream_error"),
        ("authentication_error", 401, 502, "upstream_error"),  # the gateway's key, not yours
    ],
)
def test_an_error_inside_the_upstream_stream_is_judged_by_its_own_status(
    error_type: str, upstream_status: int, status: int, type_: str
) -> None:
    exc = UpstreamStreamError(error_type, "from the stream", status_code=upstream_status)
    assert error_status(exc) == status
    error = error_payload(exc)["error"]
    assert error["type"] == type_
    assert error["code"] == (
        "rate_limit_exceeded" if upstream_status == 429 else f"upstream_{upstream_status}"
    )


def test_param_names_the_field_or_the_model() -> None:
    assert error_payload(InvalidLLMRequest("bad", param="messages[0]"))["error"]["param"] == (
        "messages[0]"
    )
    assert error_payload(ModelNotFound("x"))["error"]["param"] == "model"
    assert error_payload(status_error(400))["error"]["param"] is None
