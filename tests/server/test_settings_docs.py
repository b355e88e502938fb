"""``docs/configuration.md`` lists every setting, and nothing that is not one: the variables
named in it are compared with the settings model's fields (nested sections included), and the
keys of its model and upstream entry tables with ``ModelSettings`` and ``UpstreamSettings``."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from mianzhang.llm import ModelSettings, UpstreamSettings
from mianzhang.server import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _variables(model: type[BaseModel], prefix: str = "MIANZHANG_") -> set[str]:
    """The environment variable of every leaf field (a section's fields are nested with
    ``__``; a field holding a dict or list of models is one variable, given as JSON)."""
    found: set[str] = set()
    for name, field in model.model_fields.items():
        variable = prefix + name.upper()
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found |= _variables(annotation, variable + "__")
        else:
            found.add(variable)
    return found


def _documented() -> set[str]:
    return set(re.findall(r"`(MIANZHANG_[A-Z0-9_]+)`", DOC.read_text(encoding="utf-8")))


def test_every_setting_is_documented() -> None:
    missing = _variables(Settings) - _documented()
    assert not missing, f"add to docs/configuration.md: {sorted(missing)}"


def test_every_documented_variable_is_a_setting() -> None:
    unknown = _documented() - _variables(Settings)
    assert not unknown, f"not a setting (renamed or removed?): {sorted(unknown)}"


def test_the_walk_sees_nested_sections() -> None:
    variables = _variables(Settings)
    assert {"MIANZHANG_PORT", "MIANZHANG_LLM__GRACE_PERIOD", "MIANZHANG_JOBS__QUEUE"} <= variables
    assert "MIANZHANG_LLM" not in variables


def _table_keys(heading: str) -> set[str]:
    """The first-column keys of the table under the ``### heading`` section."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"### {heading}")
    end = text.find("\n#", start + 1)
    section = text[start : end if end != -1 else len(text)]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE))


def test_every_model_key_is_documented_both_ways() -> None:
    assert _table_keys("Model entries") == set(ModelSettings.model_fields)


def test_every_upstream_key_is_documented_both_ways() -> None:
    assert _table_keys("Upstream entries") == set(UpstreamSettings.model_fields)
