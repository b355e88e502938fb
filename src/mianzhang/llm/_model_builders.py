"""The provider of each configured model, built from :class:`LLMSettings`: one builder per
provider kind (:data:`BUILDERS`).

Sharing: an upstream's provider is built once per API (``openai``: Chat Completions,
``anthropic``: the Messages API) and shared by every model naming that upstream with that
provider, so they share one connection pool; ``demo``, ``scripted`` and ``local`` models get
a provider each. API keys are resolved first, for every upstream (an unset ``api_key_env`` is
a :class:`ConfigError` even for an upstream no model uses yet). Building opens nothing: pools
connect on first use and a local model loads on its first generation, so a failure halfway
leaves nothing to close.

Every :class:`ConfigError` raised here starts with the setting at fault, named as its
environment variable (``MIANZHANG_LLM__UPSTREAMS__MAIN__API_KEY_ENV: $KEY is not set``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Final

import httpx

from .._errors import ConfigError
from ._anthropic import AnthropicProvider
from ._demo import DEMO_DESCRIPTION, DemoProvider
from ._openai import OpenAIProvider
from ._provider import Provider
from ._scripted import SCRIPTED_DESCRIPTION, ScriptedProvider
from ._settings import (
    ANTHROPIC_BASE_URL,
    LLMSettings,
    ModelSettings,
    ProviderKind,
    UpstreamSettings,
    setting_name,
)

__all__ = ["BUILDERS", "Built", "ProviderBuilder", "TransportFactory"]

TransportFactory = Callable[[str], httpx.AsyncBaseTransport | None]
"""``factory(upstream_name)``: an httpx transport replacing the network for it (tests)."""

Built = tuple[Provider, str]
"""A model's provider and its default description (for ``/v1/models``)."""


def _api_key(name: str, upstream: UpstreamSettings, env: Mapping[str, str]) -> str | None:
    if upstream.api_key is not None:
        return upstream.api_key.get_secret_value()
    if not upstream.api_key_env:
        return None
    key = env.get(upstream.api_key_env)
    if key is None:
        place = setting_name("upstreams", name, "api_key_env")
        raise ConfigError(f"{place}: ${upstream.api_key_env} is not set")
    return key


class ProviderBuilder:
    """Builds the providers of one :class:`LLMSettings` (see the module docstring) and
    remembers the shared upstream ones (:attr:`shared`)."""

    def __init__(
        self,
        settings: LLMSettings,
        *,
        environ: Mapping[str, str] | None = None,
        transport_factory: TransportFactory | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.settings = settings
        self._keys = {name: _api_key(name, up, env) for name, up in settings.upstreams.items()}
        self._transport_factory = transport_factory
        self.shared: dict[tuple[str, ProviderKind], Provider] = {}

    def build(self, name: str, spec: ModelSettings) -> Built:
        """The provider serving model ``name`` and its default description."""
        return BUILDERS[spec.provider](self, name, spec)

    def upstream(self, spec: ModelSettings) -> Provider:
        """The shared provider for ``spec``'s upstream and API, built on first use."""
        assert spec.upstream is not None  # checked by LLMSettings
        key = (spec.upstream, spec.provider)
        if key not in self.shared:
            self.shared[key] = _UPSTREAMS[spec.provider](self, spec.upstream)
        return self.shared[key]

    def transport(self, upstream: str) -> httpx.AsyncBaseTransport | None:
        factory = self._transport_factory
        return factory(upstream) if factory is not None else None

    def key(self, upstream: str) -> str | None:
        return self._keys[upstream]


def _openai_upstream(builder: ProviderBuilder, name: str) -> Provider:
    up = builder.settings.upstreams[name]
    assert up.base_url is not None  # checked by LLMSettings
    return OpenAIProvider(
        up.base_url,
        api_key=builder.key(name),
        headers=up.headers,
        include_usage=up.include_usage,
        connect_timeout=up.connect_timeout,
        max_connections=up.max_connections,
        transport=builder.transport(name),
    )


def _anthropic_upstream(builder: ProviderBuilder, name: str) -> Provider:
    up = builder.settings.upstreams[name]
    return AnthropicProvider(
        up.base_url or ANTHROPIC_BASE_URL,
        api_key=builder.key(name),
        anthropic_version=up.anthropic_version,
        headers=up.headers,
        default_max_tokens=up.default_max_tokens,
        connect_timeout=up.connect_timeout,
        max_connections=up.max_connections,
        transport=builder.transport(name),
    )


_UPSTREAMS: Final[Mapping[ProviderKind, Callable[[ProviderBuilder, str], Provider]]] = {
    "openai": _openai_upstream,
    "anthropic": _anthropic_upstream,
}


def _via_upstream(builder: ProviderBuilder, name: str, spec: ModelSettings) -> Built:
    return builder.upstream(spec), f"{spec.upstream_model or name} via {spec.upstream}"


def _demo(builder: ProviderBuilder, name: str, spec: ModelSettings) -> Built:
    provider = DemoProvider(ttft=spec.ttft, token_delay=spec.token_delay, tokens=spec.tokens)
    return provider, DEMO_DESCRIPTION


def _scripted(builder: ProviderBuilder, name: str, spec: ModelSettings) -> Built:
    # LLMSettings has read and checked the scripts and the name; read again, they may have
    # changed since: a broken file is still named by its setting
    if spec.scripts_dir is None:
        return ScriptedProvider(), SCRIPTED_DESCRIPTION
    try:
        return ScriptedProvider.from_directory(spec.scripts_dir), SCRIPTED_DESCRIPTION
    except ConfigError as exc:
        raise ConfigError(f"{setting_name('models', name, 'scripts_dir')}: {exc}") from None


def _local(builder: ProviderBuilder, name: str, spec: ModelSettings) -> Built:
    try:
        from ._local import LocalProvider
    except ImportError as exc:
        raise ConfigError(
            f"{setting_name('models', name, 'provider')}: the local provider needs the 'local' "
            "extra (pip install 'mianzhang[local]')"
        ) from exc
    assert spec.path is not None  # checked by LLMSettings
    provider = LocalProvider(
        spec.path, max_new_tokens=spec.max_new_tokens, max_concurrency=spec.max_concurrency
    )
    return provider, f"local transformers model from {spec.path}"


BUILDERS: Final[Mapping[ProviderKind, Callable[[ProviderBuilder, str, ModelSettings], Built]]] = {
    "demo": _demo,
    "scripted": _scripted,
    "openai": _via_upstream,
    "anthropic": _via_upstream,
    "local": _local,
}
"""The builder of each provider kind: ``builder(provider_builder, model_name, spec)``."""
