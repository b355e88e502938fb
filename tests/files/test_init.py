"""``mianzhang.files`` exports exactly what ``__all__`` names."""

from __future__ import annotations

import mianzhang.files as files


def test_all_names_exist_and_are_public() -> None:
    for name in files.__all__:
        assert hasattr(files, name), name
        assert not name.startswith("_")
    assert sorted(files.__all__) == sorted(set(files.__all__))


def test_no_public_name_left_out() -> None:
    public = {
        name
        for name, value in vars(files).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith(files.__name__)
    }
    assert public <= set(files.__all__), public - set(files.__all__)
