"""Where an upstream's requests go and how their heads are written: the origin of its
``base_url`` (``http``/``https``, host, port), the path prefix, and the header block sent with
every request, validated once. No I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

__all__ = ["UpstreamTarget"]

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_FRAMING: Final = ("content-length", "transfer-encoding")  # written per request, never given


def _header_block(host: str, headers: Mapping[str, str]) -> bytes:
    """``name: value\\r\\n`` lines: ``host``, ``user-agent``, then ``headers`` (lower-cased
    names, later ones winning); a name or value that could split the head is a ValueError."""
    merged = {"host": host, "user-agent": "mianzhang"}
    for name, value in headers.items():
        merged[name.lower()] = value
    for name in _FRAMING:
        merged.pop(name, None)
    lines = []
    for name, value in merged.items():
        if any(c in name + value for c in "\r\n\0") or not name or ":" in name:
            raise ValueError(f"invalid header {name!r}")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")


class UpstreamTarget:
    """The origin and path prefix of ``base_url`` and the head of every request to it.

    ``base_url`` must be ``http://`` or ``https://`` with a host (else ``ValueError``); its
    path is prefixed to every request path. ``headers`` are sent with every request (the
    ``Host`` is derived from the URL, ``Content-Length`` is written per request)."""

    __slots__ = ("_header_block", "host", "port", "prefix", "tls", "url")

    def __init__(self, base_url: str, headers: Mapping[str, str] | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"upstream URL must be http:// or https:// with a host: {base_url!r}")
        self.url = base_url.rstrip("/")
        self.host: str = parts.hostname
        self.port: int = parts.port or _DEFAULT_PORTS[parts.scheme]
        self.tls = parts.scheme == "https"
        self.prefix = parts.path.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        if parts.port is not None and parts.port != _DEFAULT_PORTS[parts.scheme]:
            host = f"{host}:{parts.port}"
        self._header_block = _header_block(host, headers or {})

    def head(self, method: str, path: str, length: int) -> bytes:
        """The request line and headers of ``method path`` with a body of ``length`` bytes."""
        return (
            f"{method} {self.prefix}{path} HTTP/1.1\r\n".encode("latin-1")
            + self._header_block
            + f"content-length: {length}\r\n\r\n".encode("latin-1")
        )
