"""Settings of the LLM gateway: models by name, upstreams, retries and timeouts.

Validated at start (a bad reference is a :class:`~mianzhang.ConfigError` naming the setting).
Models and upstreams come from the settings themselves (environment, e.g.
``MIANZHANG_LLM__MODELS='{"gpt": {"provider": "openai", "upstream": "openai"}}'``) and from
an optional ``config_file`` (TOML or JSON with the same keys), whose entries are added on top.
API keys are never written in a file: ``api_key_env`` names the environment variable holding it.

Example ``models.toml``::

    default_model = "gpt"

    [upstreams.openai]
    base_url = "https://api.openai.com/v1"
    api_key_env = "OPENAI_API_KEY"

    [models.gpt]
    provider = "openai"
    upstream = "openai"
    upstream_model = "gpt-4o-mini"
    fallbacks = ["demo"]
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from .._errors import ConfigError

__all__ = ["LLMSettings", "ModelSettings", "UpstreamSettings"]


class UpstreamSettings(BaseModel):
    """One OpenAI-compatible server; every model naming it shares one connection pool."""

    model_config = ConfigDict(extra="forbid")

    base_url: str
    api_key_env: str | None = None
    api_key: SecretStr | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    include_usage: bool = True
    connect_timeout: float = Field(default=10.0, gt=0)
    max_connections: int = Field(default=1000, ge=1)


class ModelSettings(BaseModel):
    """A model as clients name it: which provider serves it and what to try when it fails."""

    model_config = ConfigDict(extra="forbid")

    provider: Literal["demo", "openai", "local"]
    upstream: str | None = None
    upstream_model: str | None = None
    path: str | None = None
    fallbacks: list[str] = Field(default_factory=list)
    description: str | None = None
    # demo provider
    ttft: float = Field(default=0.3, ge=0)
    token_delay: float = Field(default=0.04, ge=0)
    tokens: int = Field(default=120, ge=1)
    # local provider
    max_new_tokens: int = Field(default=256, ge=1)
    max_concurrency: int = Field(default=1, ge=1)


def _default_models() -> dict[str, ModelSettings]:
    return {"demo": ModelSettings(provider="demo")}


class LLMSettings(BaseModel):
    """The ``llm`` section of the server settings."""

    model_config = ConfigDict(extra="forbid")

    config_file: Path | None = None
    default_model: str = "demo"
    models: dict[str, ModelSettings] = Field(default_factory=_default_models)
    upstreams: dict[str, UpstreamSettings] = Field(default_factory=dict)
    max_retries: int = Field(default=2, ge=0, le=10)
    retry_initial_delay: float = Field(default=0.5, ge=0)
    retry_max_delay: float = Field(default=8.0, ge=0)
    first_token_timeout: float = Field(default=120.0, gt=0)
    stall_timeout: float = Field(default=60.0, gt=0)
    grace_period: float = Field(default=10.0, ge=0)
    stream_max_events: int = Field(default=20_000, ge=100)
    stream_ttl: float = Field(default=600.0, ge=0)

    @model_validator(mode="after")
    def _load_and_check(self) -> LLMSettings:
        if self.config_file is not None:
            self._merge_file(self.config_file)
        if self.retry_initial_delay > self.retry_max_delay:
            raise ConfigError("llm.retry_initial_delay must be <= llm.retry_max_delay")
        if self.default_model not in self.models:
            raise ConfigError(f"llm.default_model {self.default_model!r} is not a configured model")
        for name, model in self.models.items():
            where = f"llm.models.{name}"
            if model.provider == "openai" and (
                model.upstream is None or model.upstream not in self.upstreams
            ):
                raise ConfigError(f"{where}.upstream must name one of llm.upstreams")
            if model.provider == "local" and not model.path:
                raise ConfigError(f"{where}.path is required for the local provider")
            for fallback in model.fallbacks:
                if fallback not in self.models:
                    raise ConfigError(f"{where}.fallbacks: {fallback!r} is not a configured model")
                if fallback == name:
                    raise ConfigError(f"{where}.fallbacks: a model cannot fall back to itself")
        return self

    def _merge_file(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
            raw: Any = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"llm.config_file {str(path)!r}: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"llm.config_file {str(path)!r}: expected a table/object")
        unknown = set(raw) - {"default_model", "models", "upstreams"}
        if unknown:
            raise ConfigError(f"llm.config_file {str(path)!r}: unknown keys {sorted(unknown)}")
        try:
            for name, spec in (raw.get("upstreams") or {}).items():
                self.upstreams[name] = UpstreamSettings.model_validate(spec)
            for name, spec in (raw.get("models") or {}).items():
                self.models[name] = ModelSettings.model_validate(spec)
        except ValueError as exc:
            raise ConfigError(f"llm.config_file {str(path)!r}: {exc}") from exc
        if "default_model" in raw:
            self.default_model = str(raw["default_model"])
