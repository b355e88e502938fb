"""Per-caller limits: requests per minute, LLM tokens per minute, concurrent streams.

Request and token budgets are moving windows kept by the ``limits`` library (memory, or Redis
through redis-py when the server runs on Redis, so every instance shares them). Concurrent
streams are leases: in memory a counter; in Redis a sorted set per caller whose members expire
unless the owning instance renews them, so a crashed instance cannot leak slots for longer than
``lease_ttl`` seconds.

On Redis every ``MIANZHANG_REDIS_URL`` form works (one server, a Redis Cluster, a Sentinel):
the client is the log's connection factory's (``log/redis/_connect.py``), handed to ``limits``
as its storage's connection; every key and script names one key (one cluster slot).

A refusal raises :class:`~mianzhang.RateLimited` before any stream starts; the app answers 429
with ``Retry-After`` and the IETF ``RateLimit-Policy`` / ``RateLimit`` headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any, Protocol

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from pydantic import BaseModel, ConfigDict, Field

from .._errors import RateLimited
from .._tasks import cancel_and_wait

__all__ = ["LimitsSettings", "RateLimiter", "StreamLease"]

logger = logging.getLogger("mianzhang.limits")


class LimitsSettings(BaseModel):
    """The ``limits`` section; 0 turns a limit off. Callers are API keys / token subjects;
    anonymous callers are limited per client address."""

    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int = Field(default=0, ge=0)
    llm_tokens_per_minute: int = Field(default=0, ge=0)
    concurrent_streams: int = Field(default=0, ge=0)
    lease_ttl: float = Field(default=30.0, gt=1)


class StreamLease(Protocol):
    async def release(self) -> None: ...


class _Slots(Protocol):
    async def acquire(self, who: str, cap: int) -> StreamLease | None: ...

    async def aclose(self) -> None: ...


class _MemoryLease:
    def __init__(self, slots: _MemorySlots, who: str) -> None:
        self._slots = slots
        self._who = who
        self._released = False

    async def release(self) -> None:
        if not self._released:
            self._released = True
            self._slots.held[self._who] -= 1
            if not self._slots.held[self._who]:
                del self._slots.held[self._who]


class _MemorySlots:
    def __init__(self) -> None:
        self.held: dict[str, int] = {}

    async def acquire(self, who: str, cap: int) -> StreamLease | None:
        if self.held.get(who, 0) >= cap:
            return None
        self.held[who] = self.held.get(who, 0) + 1
        return _MemoryLease(self, who)

    async def aclose(self) -> None:
        self.held.clear()


_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""


class _RedisLease:
    def __init__(self, slots: _RedisSlots, key: str, member: str) -> None:
        self._slots = slots
        self.key = key
        self.member = member

    async def release(self) -> None:
        if self._slots.leases.pop(self.member, None) is not None:
            with contextlib.suppress(Exception):
                await self._slots.client.zrem(self.key, self.member)


class _RedisSlots:
    def __init__(self, client: Any, prefix: str, ttl: float) -> None:
        self.client: Any = client
        self.prefix = prefix
        self.ttl = ttl
        self.leases: dict[str, _RedisLease] = {}
        self._script = self.client.register_script(_ACQUIRE)
        self._renewer: asyncio.Task[None] | None = None

    async def acquire(self, who: str, cap: int) -> StreamLease | None:
        key = f"{self.prefix}streams:{who}"
        member = secrets.token_hex(8)
        now = time.time()
        args: list[float | int | str] = [now, now + self.ttl, cap, member, int(self.ttl * 2000)]
        if not await self._script(keys=[key], args=args):
            return None
        lease = _RedisLease(self, key, member)
        self.leases[member] = lease
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew())
        return lease

    async def _renew(self) -> None:
        while self.leases:
            await asyncio.sleep(self.ttl / 3)
            expiry = time.time() + self.ttl
            for lease in list(self.leases.values()):
                try:
                    await self.client.zadd(lease.key, {lease.member: expiry}, xx=True)
                except Exception:
                    logger.warning("cannot renew stream lease", exc_info=True)

    async def aclose(self) -> None:
        if self._renewer is not None:
            await cancel_and_wait(self._renewer)
        for lease in list(self.leases.values()):
            await lease.release()


def _shared_storage(client: Any, prefix: str) -> Storage:
    """``limits``' Redis storage on ``client`` (any deployment) instead of a URL of its own."""
    from limits.aio.storage import RedisStorage

    class _ClientStorage(RedisStorage):
        def configure_bridge(self) -> None:
            bridge: Any = self.bridge
            bridge.storage = client
            bridge.connection_getter = lambda _readonly: client

    return _ClientStorage("async+redis://", implementation="redispy", key_prefix=prefix)


class RateLimiter:
    """The limits of one app (see the module docstring). ``redis_url``: share them."""

    def __init__(
        self, settings: LimitsSettings, *, redis_url: str | None = None, prefix: str = "mz:"
    ) -> None:
        self.settings = settings
        self._storage: Storage
        self._client: Any = None
        if redis_url:
            from ..log.redis._connect import connect

            # one client for both, owned (and closed) here
            self._client = connect(redis_url, decode_responses=False, client_name="mz-limits")
            self._storage = _shared_storage(self._client, f"{prefix}rl")
            self._slots: _Slots = _RedisSlots(self._client, prefix, settings.lease_ttl)
        else:
            self._storage = MemoryStorage()
            self._slots = _MemorySlots()
        self._window = MovingWindowRateLimiter(self._storage)
        self._requests = RateLimitItemPerMinute(max(1, settings.requests_per_minute))
        self._tokens = RateLimitItemPerMinute(max(1, settings.llm_tokens_per_minute))

    async def _refuse(self, policy: str, item: RateLimitItemPerMinute, who: str) -> RateLimited:
        stats = await self._window.get_window_stats(item, policy, who)
        retry_after = int(stats.reset_time - time.time()) + 1
        return RateLimited(policy, item.amount, 60, retry_after)

    async def request(self, who: str) -> None:
        """Count one request of ``who``; raises :class:`RateLimited` when over the limit."""
        if self.settings.requests_per_minute and not await self._window.hit(
            self._requests, "requests", who
        ):
            raise await self._refuse("requests", self._requests, who)

    async def check_tokens(self, who: str) -> None:
        """Raise :class:`RateLimited` if ``who`` has no LLM tokens left in the window."""
        if self.settings.llm_tokens_per_minute and not await self._window.test(
            self._tokens, "tokens", who
        ):
            raise await self._refuse("tokens", self._tokens, who)

    async def charge_tokens(self, who: str, tokens: int) -> None:
        """Record ``tokens`` used by ``who`` (after a generation; may overdraw the window)."""
        if self.settings.llm_tokens_per_minute and tokens > 0:
            cost = min(tokens, self._tokens.amount)
            if not await self._window.hit(self._tokens, "tokens", who, cost=cost):
                # more than is left: spend the rest, so the window is exhausted until it moves
                stats = await self._window.get_window_stats(self._tokens, "tokens", who)
                if stats.remaining > 0:
                    await self._window.hit(self._tokens, "tokens", who, cost=stats.remaining)

    async def stream(self, who: str) -> StreamLease | None:
        """A concurrent-stream slot for ``who``; ``None`` when limits are off. Raises
        :class:`RateLimited` when ``who`` already holds ``concurrent_streams`` streams."""
        cap = self.settings.concurrent_streams
        if not cap:
            return None
        lease = await self._slots.acquire(who, cap)
        if lease is None:
            raise RateLimited("streams", cap, 0, 1)
        return lease

    async def aclose(self) -> None:
        try:
            await self._slots.aclose()
        finally:
            if self._client is not None:
                from ..log.redis._connect import close

                await close(self._client)
