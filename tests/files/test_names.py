"""Client file names: cleaned for storage, rendered safely in Content-Disposition."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mianzhang.files import clean_content_type, clean_filename, content_disposition


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\secret.txt", "secret.txt"),
        ("a\r\nSet-Cookie: x=1", "aSet-Cookie: x=1"),
        ("..", None),
        (".", None),
        ("", None),
        ("dir/", None),
        ("\x00\x01", None),
        ("x" * 300, "x" * 255),
        (None, None),
    ],
)
def test_clean_filename(raw: str | None, clean: str | None) -> None:
    assert clean_filename(raw) == clean


def test_plain_ascii_name() -> None:
    assert content_disposition("report.pdf") == 'attachment; filename="report.pdf"'


def test_unicode_name_gets_filename_star_and_ascii_fallback() -> None:
    value = content_disposition("résumé 简历.pdf")
    # NFKD strips the accents; characters with no ASCII form are dropped from the fallback
    assert value.startswith("attachment; filename=\"resume .pdf\"; filename*=UTF-8''")
    encoded = value.split("filename*=UTF-8''", 1)[1]
    assert unquote(encoded) == "résumé 简历.pdf"


@pytest.mark.parametrize(
    "name",
    ['evil".exe', "a\\b", 'x"; filename="y.html', "line\r\nbreak", "semi;colon", "tab\tname"],
)
def test_no_quote_or_crlf_injection(name: str) -> None:
    value = content_disposition(name)
    fallback = re.fullmatch(
        r'attachment; filename="([^"\\]*)"(; filename\*=UTF-8\'\'(\S+))?', value
    )
    assert fallback is not None, value
    assert "\r" not in value and "\n" not in value


@given(st.text(max_size=300))
def test_any_name_renders_as_visible_ascii_with_one_quoted_string(name: str) -> None:
    value = content_disposition(name)
    assert value.isascii()
    assert all(0x20 <= ord(ch) < 0x7F for ch in value)
    assert value.count('"') == 2
    if "filename*=" in value:
        assert unquote(value.split("UTF-8''", 1)[1]) == clean_filename(name)


def test_inline_or_nothing_else() -> None:
    assert content_disposition("a", "inline").startswith("inline;")
    with pytest.raises(ValueError):
        content_disposition("a", "form-data")
    assert content_disposition(None) == 'attachment; filename="download"'


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("text/plain; charset=utf-8", "text/plain"),
        ("IMAGE/PNG", "image/png"),
        ("text/html\r\nX-Evil: 1", "application/octet-stream"),
        ("nonsense", "application/octet-stream"),
        ("", "application/octet-stream"),
        (None, "application/octet-stream"),
    ],
)
def test_clean_content_type(raw: str | None, clean: str) -> None:
    assert clean_content_type(raw) == clean
