"""``TailsSettings``: tail names are URL-safe keys; paths are never derived from requests."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mianzhang.tails import TailsSettings


def test_names_map_to_paths() -> None:
    settings = TailsSettings(files={"app": Path("/var/log/app.log"), "web.err-1": Path("x")})
    assert settings.files["app"] == Path("/var/log/app.log")


@pytest.mark.parametrize("name", ["", "../etc", "a/b", ".hidden", "a b", "x" * 101])
def test_unusable_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="tail name"):
        TailsSettings(files={name: Path("/tmp/x")})
