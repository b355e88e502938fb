"""The Redis keys (and the wake channel) of one stream: all under the hash tag ``{stream}``, so
one cluster slot.

Every script and multi-key command of the Redis log names only keys of one ``StreamKeys``;
that is what lets the same code run on one Redis and on Redis Cluster.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["StreamKeys"]


@dataclass(frozen=True, slots=True)
class StreamKeys:
    """The Redis keys of one stream (all under the hash tag ``{stream}``)."""

    meta: str
    log: str
    readers: str
    reader_counts: str
    wake: str
    """The sharded pub/sub channel ``append`` and ``close`` publish to on a Redis Cluster."""
    lease: str
    """The producer's lease (``_lease_scripts.py``)."""

    @classmethod
    def of(cls, prefix: str, stream: str) -> StreamKeys:
        base = f"{prefix}{{{stream}}}:"
        return cls(
            base + "meta",
            base + "log",
            base + "rdr",
            base + "rdc",
            base + "wake",
            base + "lease",
        )

    def idempotency(self, key: str) -> str:
        """The key remembering an append made under idempotency ``key`` (hashed: no ``}`` can
        make it collide with another stream's keys)."""
        digest = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
        return self.meta[: -len("meta")] + "idem:" + digest
