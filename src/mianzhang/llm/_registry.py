"""Models by name: which provider serves each, under which upstream name, with which fallbacks.

The registry owns its providers: built from settings (:meth:`ModelRegistry.from_settings`),
one ``openai`` or ``anthropic`` provider (one connection pool) per upstream and API, shared by
every model that names it; one demo, scripted or local provider per model.
:meth:`ModelRegistry.aclose` closes each exactly once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .._errors import ConfigError, ModelNotFound
from ._model_builders import ProviderBuilder, TransportFactory
from ._provider import Provider
from ._settings import LLMSettings

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
        transport_factory: TransportFactory | None = None,
    ) -> ModelRegistry:
        """The models the settings describe, each with its provider
        (:mod:`._model_builders`: upstream providers shared per upstream and API).
        ``environ`` replaces ``os.environ`` for API keys; ``transport_factory(upstream_name)``
        may replace the network for an upstream (tests). A :class:`ConfigError` names the
        setting at fault."""
        builder = ProviderBuilder(settings, environ=environ, transport_factory=transport_factory)
        entries = []
        for name, spec in settings.models.items():
            provider, description = builder.build(name, spec)
            entries.append(
                ModelEntry(
                    name=name,
                    provider=provider,
                    upstream_model=spec.upstream_model or name,
                    fallbacks=tuple(spec.fallbacks),
                    description=spec.description or description,
                )
            )
        return cls(entries, default_model=settings.default_model)

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
