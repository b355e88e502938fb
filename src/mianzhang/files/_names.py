"""Client-supplied file names and content types, made safe to store and to send back.

A client's file name is metadata only: it is never part of a path. It is cleaned once when
stored (:func:`clean_filename`: last path component, no control characters, bounded length)
and rendered for ``Content-Disposition`` by :func:`content_disposition` as RFC 6266 asks: an
ASCII ``filename="..."`` fallback with only safe characters (no quotes, backslashes, CR/LF or
``;``) and, when the name is not plain ASCII, ``filename*=UTF-8''...`` percent-encoded per
RFC 8187 (formerly 5987), so no header injection is possible whatever the name.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "clean_content_type",
    "clean_filename",
    "content_disposition",
]

DEFAULT_CONTENT_TYPE = "application/octet-stream"
_MAX_NAME_CHARS = 255
_FALLBACK_NAME = "download"
# Characters kept as they are in the ASCII fallback (a quoted-string without '"' and '\\').
_ASCII_SAFE = re.compile(r"[^A-Za-z0-9 !#$&'()+,.=@\[\]^_`{}~-]")
# RFC 8187 attr-char minus ALPHA / DIGIT, which quote() always keeps.
_ATTR_CHAR_EXTRA = "!#$&+-.^_`|~"
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE = re.compile(rf"({_TOKEN})/({_TOKEN})")


def clean_filename(name: str | None) -> str | None:
    """The name to store: its last path component (``/`` or ``\\``), NFC, without control
    characters, at most 255 characters; ``None`` when nothing usable is left (or ``.``/``..``).
    """
    if name is None:
        return None
    base = re.split(r"[/\\]", name)[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip()
    base = base[:_MAX_NAME_CHARS]
    if not base or base in (".", ".."):
        return None
    return base


def _ascii_fallback(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name)
    ascii_name = decomposed.encode("ascii", "ignore").decode("ascii")
    safe = _ASCII_SAFE.sub("_", ascii_name).strip(" .")
    return safe or _FALLBACK_NAME


def content_disposition(filename: str | None, disposition: str = "attachment") -> str:
    """``attachment; filename="fallback"[; filename*=UTF-8''encoded]`` for any ``filename``.

    The result contains only visible ASCII, never a double quote inside the quoted string,
    never CR or LF. ``filename*`` is added when the fallback differs from the cleaned name.
    """
    if disposition not in ("attachment", "inline"):
        raise ValueError(f"disposition must be 'attachment' or 'inline', not {disposition!r}")
    name = clean_filename(filename) or _FALLBACK_NAME
    fallback = _ascii_fallback(name)
    value = f'{disposition}; filename="{fallback}"'
    if fallback != name:
        value += f"; filename*=UTF-8''{quote(name, safe=_ATTR_CHAR_EXTRA)}"
    return value


def clean_content_type(value: str | None) -> str:
    """A client-declared media type reduced to ``type/subtype`` (lowercase) if well-formed,
    else ``application/octet-stream``. Parameters (``charset``) are dropped."""
    if not value:
        return DEFAULT_CONTENT_TYPE
    essence = value.split(";", 1)[0].strip(" \t").lower()
    if len(essence) > 127 or _MEDIA_TYPE.fullmatch(essence) is None:
        return DEFAULT_CONTENT_TYPE
    return essence
