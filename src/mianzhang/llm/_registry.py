"""Models by name: which provider serves each, under which upstream name, with which fallbacks.

The registry owns its providers: one :class:`OpenAIProvider` (one connection pool) per
configured upstream, shared by every model that names it; one demo or local provider per
model. :meth:`ModelRegistry.aclose` closes each exactly once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import httpx

from .._errors import ConfigError, ModelNotFound
from ._demo import DEMO_DESCRIPTION, DemoProvider
from ._openai import OpenAIProvider
from ._provider import Provider
from ._settings import LLMSettings, ModelSettings

__all__ = ["ModelEntry", "ModelRegistry"]


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One model as clients name it."""

    name: str
    provider: Provider
    upstream_model: str
    fallbacks: tuple[str, ...] = ()
    description: str = ""

    @property
    def kind(self) -> str:
        return self.provider.kind

    def to_openai(self, created: int = 0) -> dict[str, object]:
        """The ``/v1/models`` entry (``owned_by`` says which provider serves it)."""
        return {
            "id": self.name,
            "object": "model",
            "created": created,
            "owned_by": f"mianzhang-{self.kind}",
            "description": self.description,
        }


def _local_provider(name: str, spec: ModelSettings) -> Provider:
    try:
        from ._local import LocalProvider
    except ImportError as exc:
        raise ConfigError(
            f"llm.models.{name}: the local provider needs the 'local' extra "
            "(pip install 'mianzhang[local]')"
        ) from exc
    assert spec.path is not None  # checked by LLMSettings
    return LocalProvider(
        spec.path, max_new_tokens=spec.max_new_tokens, max_concurrency=spec.max_concurrency
    )


class ModelRegistry:
    """Resolves model names to :class:`ModelEntry` (and their fallback chains)."""

    def __init__(
        self,
        entries: Iterable[ModelEntry],
        *,
        default_model: str,
        providers: Iterable[Provider] = (),
    ) -> None:
        self._entries = {entry.name: entry for entry in entries}
        # every provider this registry closes: those of the entries plus ``providers``
        self._providers: list[Provider] = []
        for provider in [*providers, *(e.provider for e in self._entries.values())]:
            if not any(provider is known for known in self._providers):
                self._providers.append(provider)
        if default_model not in self._entries:
            raise ConfigError(f"default model {default_model!r} is not registered")
        for entry in self._entries.values():
            for fallback in entry.fallbacks:
                if fallback not in self._entries:
                    raise ConfigError(f"model {entry.name!r}: unknown fallback {fallback!r}")
        self.default_model = default_model

    @classmethod
    def from_settings(
        cls,
        settings: LLMSettings,
        *,
        environ: Mapping[str, str] | None = None,
        transport_factory: Callable[[str], httpx.AsyncBaseTransport | None] | None = None,
    ) -> ModelRegistry:
        """Build the providers the settings describe. ``transport_factory(upstream_name)``
        may replace the network for an upstream (tests)."""
        env = os.environ if environ is None else environ
        upstreams: dict[str, OpenAIProvider] = {}
        for name, up in settings.upstreams.items():
            key = up.api_key.get_secret_value() if up.api_key is not None else None
            if key is None and up.api_key_env:
                key = env.get(up.api_key_env)
                if key is None:
                    raise ConfigError(
                        f"llm.upstreams.{name}.api_key_env: ${up.api_key_env} is not set"
                    )
            upstreams[name] = OpenAIProvider(
                up.base_url,
                api_key=key,
                headers=up.headers,
                include_usage=up.include_usage,
                connect_timeout=up.connect_timeout,
                max_connections=up.max_connections,
                transport=transport_factory(name) if transport_factory else None,
            )
        entries: list[ModelEntry] = []
        for name, spec in settings.models.items():
            provider: Provider
            if spec.provider == "demo":
                provider = DemoProvider(
                    ttft=spec.ttft, token_delay=spec.token_delay, tokens=spec.tokens
                )
                description = spec.description or DEMO_DESCRIPTION
            elif spec.provider == "openai":
                assert spec.upstream is not None  # checked by LLMSettings
                provider = upstreams[spec.upstream]
                description = (
                    spec.description or f"{spec.upstream_model or name} via {spec.upstream}"
                )
            else:
                provider = _local_provider(name, spec)
                description = spec.description or f"local transformers model from {spec.path}"
            entries.append(
                ModelEntry(
                    name=name,
                    provider=provider,
                    upstream_model=spec.upstream_model or name,
                    fallbacks=tuple(spec.fallbacks),
                    description=description,
                )
            )
        return cls(entries, default_model=settings.default_model, providers=upstreams.values())

    def get(self, name: str) -> ModelEntry:
        """The model named ``name``; :class:`ModelNotFound` if none."""
        try:
            return self._entries[name]
        except KeyError:
            raise ModelNotFound(name) from None

    def chain(self, name: str) -> list[ModelEntry]:
        """``name`` followed by its fallbacks (each once, in order)."""
        first = self.get(name)
        chain = [first]
        for fallback in first.fallbacks:
            entry = self._entries[fallback]
            if entry not in chain:
                chain.append(entry)
        return chain

    def models(self) -> list[ModelEntry]:
        return list(self._entries.values())

    async def aclose(self) -> None:
        """Close every provider once (pools, loaded weights), also if one fails to close."""
        errors: list[BaseException] = []
        for provider in self._providers:
            try:
                await provider.aclose()
            except Exception as exc:  # close the others, then report
                errors.append(exc)
        if errors:
            raise errors[0]
