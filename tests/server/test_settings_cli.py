"""Settings are validated at start with clear errors; ``mianzhang serve`` exits 2 on them."""

from __future__ import annotations

import pytest

from mianzhang import ConfigError
from mianzhang.server import load_settings
from tests._support.procs import run_cli


def test_defaults_need_nothing() -> None:
    settings = load_settings()
    assert settings.log_backend == "memory"
    assert settings.port == 8000
    assert settings.auth.allows_anonymous


def test_environment_is_read_with_nested_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIANZHANG_PORT", "9001")
    monkeypatch.setenv("MIANZHANG_LIMITS__REQUESTS_PER_MINUTE", "7")
    settings = load_settings()
    assert settings.port == 9001
    assert settings.limits.requests_per_minute == 7


def test_every_problem_is_named_by_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIANZHANG_PORT", "nope")
    monkeypatch.setenv("MIANZHANG_SEND_TIMEOUT", "-1")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "MIANZHANG_PORT" in message and "MIANZHANG_SEND_TIMEOUT" in message


def test_redis_backend_needs_a_url() -> None:
    with pytest.raises(ConfigError, match="MIANZHANG_REDIS_URL"):
        load_settings(log_backend="redis")


def test_serve_exits_2_with_a_clear_message_on_bad_settings() -> None:
    result = run_cli("serve", env={"MIANZHANG_LOG_BACKEND": "cassandra"})
    assert result.returncode == 2
    assert "MIANZHANG_LOG_BACKEND" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_cli_lists_its_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("serve", "chat", "publish", "subscribe", "worker"):
        assert command in result.stdout
