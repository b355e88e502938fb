"""Settings of the LLM gateway: models by name, upstreams, retries and timeouts.

Validated at start (stored scripts are read and parsed too; API keys are looked up when the
registry is built): every problem is reported at once, each at its place
(``MIANZHANG_LLM__MODELS__GPT__UPSTREAM: ...`` once :func:`mianzhang.server.load_settings` has
prefixed it), as a pydantic ``ValidationError``. Models and upstreams come from the settings
themselves (environment, e.g.
``MIANZHANG_LLM__MODELS='{"gpt": {"provider": "openai", "upstream": "openai"}}'``) and from an
optional ``config_file`` (TOML or JSON with the same keys), whose entries are added on top.
API keys are never written in a file: ``api_key_env`` names the environment variable holding it.

Providers (``ModelSettings.provider``): ``demo`` and ``scripted`` need nothing (no network, no
key); ``openai`` and ``anthropic`` name an upstream (``openai`` speaks Chat Completions to it,
``anthropic`` the Messages API); ``local`` loads a transformers model from ``path``.
See ``docs/models.md``.

Example ``models.toml``::

    default_model = "gpt"

    [upstreams.openai]
    base_url = "https://api.openai.com/v1"
    api_key_env = "OPENAI_API_KEY"

    [upstreams.anthropic]              # base_url defaults to https://api.anthropic.com/v1
    api_key_env = "ANTHROPIC_API_KEY"

    [models.gpt]
    provider = "openai"
    upstream = "openai"
    upstream_model = "gpt-4o-mini"
    fallbacks = ["claude", "demo"]

    [models.claude]
    provider = "anthropic"
    upstream = "anthropic"
    upstream_model = "claude-sonnet-4-5"
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from .._errors import ConfigError
from ._scripted import ScriptedProvider

__all__ = [
    "ANTHROPIC_BASE_URL",
    "LLMSettings",
    "ModelSettings",
    "ProviderKind",
    "UpstreamSettings",
    "setting_name",
]

ProviderKind = Literal["demo", "scripted", "openai", "anthropic", "local"]

ANTHROPIC_BASE_URL: Final = "https://api.anthropic.com/v1"
"""The ``base_url`` of an upstream used by ``anthropic`` models when it sets none."""

UPSTREAM_KINDS: Final = frozenset({"openai", "anthropic"})
"""The providers whose models name an upstream."""

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]


def setting_name(*loc: str | int) -> str:
    """The environment variable of a place in the ``llm`` section, as
    :func:`~mianzhang.server.load_settings` names it (``MIANZHANG_LLM__MODELS__GPT__PATH``)."""
    return "__".join(["MIANZHANG_LLM", *(str(part) for part in loc)]).upper()


class UpstreamSettings(BaseModel):
    """One upstream server. The models naming it share its connection pool (one per API:
    ``openai`` models speak Chat Completions to it, ``anthropic`` models the Messages API).

    ``base_url`` ends with the API version (``https://api.openai.com/v1``); it is required for
    ``openai`` models and defaults to :data:`ANTHROPIC_BASE_URL` for ``anthropic`` ones.
    ``include_usage`` concerns ``openai`` models; ``anthropic_version`` (the
    ``anthropic-version`` header) and ``default_max_tokens`` (sent when a request sets no
    ``max_tokens``: the Messages API requires one) concern ``anthropic`` models."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    api_key_env: str | None = None
    api_key: SecretStr | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    include_usage: bool = True
    anthropic_version: str = Field(default="2023-06-01", min_length=1)
    default_max_tokens: int = Field(default=4096, ge=1)
    connect_timeout: float = Field(default=10.0, gt=0)
    max_connections: int = Field(default=1000, ge=1)


class ModelSettings(BaseModel):
    """A model as clients name it: which provider serves it and what to try when it fails.

    ``upstream_model`` (default: the model's own name) is the name sent upstream; for a
    ``scripted`` model, the stored script it plays (built-in, or a ``NAME.json`` of
    ``scripts_dir``); a scripted model whose upstream name is no script echoes."""

    model_config = ConfigDict(extra="forbid")

    provider: ProviderKind
    upstream: str | None = None
    upstream_model: str | None = None
    path: str | None = None
    fallbacks: list[str] = Field(default_factory=list)
    description: str | None = None
    # demo provider
    ttft: float = Field(default=0.3, ge=0)
    token_delay: float = Field(default=0.04, ge=0)
    tokens: int = Field(default=120, ge=1)
    # scripted provider
    scripts_dir: Path | None = None
    # local provider
    max_new_tokens: int = Field(default=256, ge=1)
    max_concurrency: int = Field(default=1, ge=1)


def _default_models() -> dict[str, ModelSettings]:
    return {"demo": ModelSettings(provider="demo"), "scripted": ModelSettings(provider="scripted")}


def _validation_error(problems: list[Problem]) -> ValidationError:
    """One pydantic error per problem, each at its place (``load_settings`` names it)."""
    details = [
        InitErrorDetails(
            type=PydanticCustomError("llm_settings", "{problem}", {"problem": message}),
            loc=loc,
            input=None,
        )
        for loc, message in problems
    ]
    return ValidationError.from_exception_data("LLMSettings", details)


def _located(prefix: Loc, exc: ValidationError, suffix: str) -> Iterator[Problem]:
    for error in exc.errors(include_url=False):
        yield (*prefix, *error["loc"]), error["msg"] + suffix


def _script_problems(model: ModelSettings) -> Iterator[Problem]:
    """A scripted model's stored scripts (read and parsed) and the one it plays."""
    directory = model.scripts_dir
    if directory is not None and not directory.is_dir():
        yield ("scripts_dir",), f"{str(directory)!r} is not a directory"
        return
    try:
        provider = ScriptedProvider.from_directory(directory) if directory else ScriptedProvider()
    except ConfigError as exc:
        yield ("scripts_dir",), str(exc)
        return
    script = model.upstream_model
    if script is not None and script not in provider.scripts:
        known = ", ".join(sorted(provider.scripts))
        yield ("upstream_model",), f"no stored script {script!r} (known: {known})"


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

    # (section, name) of the entries the config file set, for error messages
    _from_file: set[tuple[str, str]] = PrivateAttr(default_factory=set)

    @model_validator(mode="after")
    def _load_and_check(self) -> LLMSettings:
        problems = list(self._merge_file(self.config_file)) if self.config_file else []
        if not problems:
            problems = list(self._problems())
        if problems:
            raise _validation_error(problems)
        return self

    def _origin(self, section: str, name: str) -> str:
        """`` (set in FILE)`` when the config file set that entry, else ``""``."""
        if (section, name) in self._from_file:
            return f" (set in {self.config_file})"
        return ""

    def _merge_file(self, path: Path) -> Iterator[Problem]:
        where = f"{str(path)!r}: "
        try:
            text = path.read_text(encoding="utf-8")
            raw: Any = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (OSError, ValueError) as exc:
            yield ("config_file",), where + str(exc)
            return
        if not isinstance(raw, dict):
            yield ("config_file",), where + "expected a table/object"
            return
        unknown = set(raw) - {"default_model", "models", "upstreams"}
        if unknown:
            yield ("config_file",), where + f"unknown keys {sorted(unknown)}"
            return
        kinds: dict[str, type[BaseModel]] = {"upstreams": UpstreamSettings, "models": ModelSettings}
        for section, kind in kinds.items():
            entries = raw.get(section) or {}
            if not isinstance(entries, dict):
                yield ("config_file",), where + f"{section} must be a table/object of entries"
                continue
            target: dict[str, Any] = getattr(self, section)
            for name, spec in entries.items():
                self._from_file.add((section, name))
                try:
                    target[name] = kind.model_validate(spec)
                except ValidationError as exc:
                    yield from _located((section, name), exc, f" (set in {path})")
        if "default_model" in raw:
            self.default_model = str(raw["default_model"])

    def _problems(self) -> Iterator[Problem]:
        if self.retry_initial_delay > self.retry_max_delay:
            yield ("retry_initial_delay",), f"must be <= {setting_name('retry_max_delay')}"
        if self.default_model not in self.models:
            known = ", ".join(self.models)
            yield ("default_model",), f"{self.default_model!r} is not a model (known: {known})"
        for name, model in self.models.items():
            for loc, message in self._model_problems(name, model):
                yield ("models", name, *loc), message + self._origin("models", name)

    def _model_problems(self, name: str, model: ModelSettings) -> Iterator[Problem]:
        if model.provider in UPSTREAM_KINDS:
            yield from self._upstream_problems(model)
        if model.provider == "local" and not model.path:
            yield ("path",), "required for the local provider (a transformers model directory)"
        if model.provider == "scripted":
            yield from _script_problems(model)
        elif model.scripts_dir is not None:
            yield ("scripts_dir",), "only the scripted provider reads scripts"
        for fallback in model.fallbacks:
            if fallback == name:
                yield ("fallbacks",), "a model cannot fall back to itself"
            elif fallback not in self.models:
                yield ("fallbacks",), f"{fallback!r} is not a configured model"

    def _upstream_problems(self, model: ModelSettings) -> Iterator[Problem]:
        known = ", ".join(self.upstreams) or "none"
        if model.upstream is None:
            yield (
                ("upstream",),
                f"required for the {model.provider} provider: the name of one of "
                f"{setting_name('upstreams')} (configured: {known})",
            )
            return
        upstream = self.upstreams.get(model.upstream)
        if upstream is None:
            yield (
                ("upstream",),
                f"{model.upstream!r} must name one of {setting_name('upstreams')} "
                f"(configured: {known})",
            )
        elif model.provider == "openai" and upstream.base_url is None:
            place = setting_name("upstreams", model.upstream, "base_url")
            yield ("upstream",), f"an openai model needs {place} (e.g. https://api.openai.com/v1)"
