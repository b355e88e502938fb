"""Server settings: environment ``MIANZHANG_*`` (nested sections with ``__``, e.g.
``MIANZHANG_LLM__DEFAULT_MODEL``), validated once at start.

Every field has an embedded default, so ``mianzhang serve`` runs with nothing configured: the
memory log, the demo model, files under ``./var/files``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .._errors import ConfigError
from .._responses._transport import DEFAULT_STREAM_SEND_BUFFER, DEFAULT_STREAM_UNSENT_LIMIT
from ..channels import ChannelsSettings
from ..chats import ChatsSettings
from ..files import FilesSettings
from ..jobs import JobsSettings
from ..llm import LLMSettings
from ..tails import TailsSettings
from ._acceptor import ACCEPT_BATCH
from ._auth import AuthSettings
from ._limits import LimitsSettings

__all__ = ["Settings", "load_settings"]


class Settings(BaseSettings):
    """Everything one server instance needs; see ``docs/configuration.md`` for each field."""

    model_config = SettingsConfigDict(
        env_prefix="MIANZHANG_", env_nested_delimiter="__", extra="forbid"
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_backend: Literal["memory", "redis"] = "memory"
    redis_url: str | None = None
    redis_prefix: str = "mz:"
    # Streams: heartbeat, slow-client cut-off, graceful shutdown.
    stream_ping: float = Field(default=15.0, ge=0)
    send_timeout: float = Field(default=30.0, gt=0)
    graceful_timeout: float = Field(default=10.0, ge=0)
    reconnect_retry_ms: tuple[int, int] = (1000, 3000)
    # Kernel send buffer of each accepted connection (bytes; 0 = the OS autotunes it, up to
    # net.ipv4.tcp_wmem's max, 4 MiB on Linux). A small value bounds what a stalled reader pins
    # in kernel memory and makes it stall (and be cut by send_timeout) early. `mianzhang serve`
    # applies it to its listening socket, whose accepted connections inherit it.
    socket_send_buffer: int = Field(default=0, ge=0)
    # Kernel send buffer of a connection while it carries a stream (SSE, NDJSON, text), set
    # when the stream starts (0 = leave it). Bounds what a stalled reader pins in the kernel;
    # streams are cut by acknowledgement, so a small buffer costs no false cut.
    stream_send_buffer: int = Field(default=DEFAULT_STREAM_SEND_BUFFER, ge=0)
    # Bytes a connection carrying a stream may hold written but not yet sent (the kernel's
    # TCP_NOTSENT_LOWAT and the server's write buffer; 0 = leave them): a reader that stops
    # reading stops costing writes after its receive window and this much.
    stream_unsent_limit: int = Field(default=DEFAULT_STREAM_UNSENT_LIMIT, ge=0)
    # Connections `mianzhang serve` accepts per event-loop iteration, at most (0 = the loop's
    # own accept: one per iteration on uvloop, which a connection storm waits behind).
    accept_batch: int = Field(default=ACCEPT_BATCH, ge=0)
    # Slow and abusive clients (uvicorn cuts nothing while bytes trickle in).
    header_timeout: float = Field(default=10.0, gt=0)  # first byte -> end of headers
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)  # request line + headers
    max_header_count: int = Field(default=100, ge=1)
    max_request_line: int = Field(default=8 * 1024, ge=256)  # the target: path and query
    body_timeout: float = Field(default=30.0, gt=0)  # longest silence inside a request body
    max_connections: int = Field(default=10_000, ge=1)  # beyond: 503 (uvicorn)
    log_format: Literal["text", "json"] = "text"
    otel_tracing: bool = False  # OpenTelemetry request spans over OTLP (extra "otel")
    # At shutdown, running producers get this long to finish (their readers have moved to
    # other instances and keep receiving through Redis) before they are cancelled.
    producer_drain_timeout: float = Field(default=5.0, ge=0)
    producer_poll_interval: float = Field(default=0.5, gt=0)
    # Liveness of producers (generations, job attempts, uploads): each holds a lease in the log
    # renewed every third of this; a producer not renewed for this long is presumed dead, and its
    # stream is ended (FAILED, an explicit error event) by whichever instance notices.
    producer_lease_ttl: float = Field(default=5.0, ge=0.5)
    # Event-loop lag metrics (mianzhang_event_loop_lag_*): one timer armed this often.
    loop_lag_interval: float = Field(default=0.25, gt=0)
    web: bool = True
    llm: LLMSettings = Field(default_factory=LLMSettings)
    files: FilesSettings = Field(default_factory=FilesSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    channels: ChannelsSettings = Field(default_factory=ChannelsSettings)
    tails: TailsSettings = Field(default_factory=TailsSettings)
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    chats: ChatsSettings = Field(default_factory=ChatsSettings)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.log_backend == "redis" and not self.redis_url:
            raise ValueError("log_backend 'redis' needs MIANZHANG_REDIS_URL")
        if self.log_backend == "redis" and self.redis_url:
            _check_redis_url(self.redis_url)
        if self.jobs.queue == "redis" and self.log_backend != "redis":
            raise ValueError("jobs.queue 'redis' needs MIANZHANG_LOG_BACKEND=redis")
        low, high = self.reconnect_retry_ms
        if low < 0 or high < low:
            raise ValueError("reconnect_retry_ms must be (low, high) with 0 <= low <= high")
        return self


def _check_redis_url(url: str) -> None:
    """Any form ``log/redis/_connect.py`` opens: ``redis://`` (``rediss://``, ``unix://``),
    ``redis+cluster://host:port,...``, ``redis+sentinel://host:port,.../service``."""
    try:
        from ..log.redis._connect import parse_redis_url
    except ImportError as exc:  # pragma: no cover - the redis extra is missing
        raise ValueError(
            "a Redis URL needs the redis extra: pip install 'mianzhang[redis]'"
        ) from exc
    try:
        parse_redis_url(url)
    except ValueError as exc:
        raise ValueError(f"MIANZHANG_REDIS_URL is not a Redis URL: {exc}") from None


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment (and ``overrides``), or :class:`ConfigError` listing every
    invalid field as ``MIANZHANG_NAME: reason``."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = "__".join(str(part) for part in error["loc"]).upper()
            name = f"MIANZHANG_{where}" if where else "settings"
            problems.append(f"{name}: {error['msg']}")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(problems)) from None
    except ConfigError as exc:
        raise ConfigError(f"invalid settings: {exc}") from None
