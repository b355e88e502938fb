"""Jobs on Redis: records in hashes, the queue in a Redis Stream read by a consumer group.

At least once: a worker takes an entry with ``XREADGROUP``; while the job runs it refreshes the
entry's idle time (``XCLAIM ... JUSTID``) every ``visibility_timeout / 3`` seconds, and only
``XACK``s it after the job reached a terminal state. A worker killed mid-job (SIGKILL) stops
refreshing; once the entry has been idle ``visibility_timeout`` seconds another worker claims
it with ``XAUTOCLAIM`` and runs the job again (attempt + 1). Jobs waiting in the stream survive
restarts of the server and of every worker (as far as Redis persists them).

Record fields are stored one per hash field (JSON-encoded, ``state`` as plain text) so the
transition script compares states without decoding user data; the first terminal state wins,
and a terminal record expires ``keep_finished`` seconds later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from typing import Any, cast

import orjson
from redis.exceptions import RedisError, ResponseError

from .._errors import BackendUnavailable, JobQueueFull
from ..log.redis._connect import Client
from ._model import JobRecord, JobState
from ._runner import JobRunner

__all__ = ["RedisJobQueue", "RedisJobStore", "RedisJobWorker"]

logger = logging.getLogger("mianzhang.jobs")

_TERMINAL = "succeeded failed cancelled"

# KEYS[1] record hash; ARGV[1] mode ("update"|"transition"), ARGV[2] new state or "",
# ARGV[3] keep seconds, ARGV[4] now, ARGV[5..] field/value pairs.
_WRITE = f"""
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return 0 end
if string.find(' {_TERMINAL} ', ' ' .. st .. ' ', 1, true) then return -1 end
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if ARGV[1] == 'transition' then
  redis.call('HSET', KEYS[1], 'state', ARGV[2])
  if string.find(' {_TERMINAL} ', ' ' .. ARGV[2] .. ' ', 1, true) then
    redis.call('HSET', KEYS[1], 'finished', ARGV[4])
    redis.call('EXPIRE', KEYS[1], ARGV[3])
  end
end
return 1
"""


def _encode(fields: dict[str, Any]) -> list[str]:
    flat: list[str] = []
    for name, value in fields.items():
        flat += [name, value.value if isinstance(value, JobState) else orjson.dumps(value).decode()]
    return flat


class RedisJobStore:
    """:class:`~mianzhang.jobs.JobStore` on Redis hashes ``{prefix}job:{id}``; the newest
    ``max_recent`` ids are indexed in the sorted set ``{prefix}jobs:recent`` (by creation
    time) for :meth:`recent`; ids whose record expired are dropped from it when met."""

    def __init__(
        self,
        client: Client,
        *,
        prefix: str = "mz:",
        keep_finished: float = 3600.0,
        max_recent: int = 10_000,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._keep = max(1, int(keep_finished))
        self._max_recent = max(1, max_recent)
        self._recent = f"{prefix}jobs:recent"
        self._write = client.register_script(_WRITE)

    def _key(self, job_id: str) -> str:
        return f"{self._prefix}job:{{{job_id}}}"

    @staticmethod
    def _decode(raw: dict[bytes, bytes]) -> JobRecord:
        data: dict[str, Any] = {}
        for key, value in raw.items():
            name = key.decode()
            data[name] = value.decode() if name == "state" else orjson.loads(value)
        return JobRecord.from_dict(data)

    async def create(self, record: JobRecord) -> None:
        data = record.to_dict()
        fields = dict(zip(data, _encode(data)[1::2], strict=True))
        fields["state"] = record.state.value
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hset(self._key(record.id), mapping=cast(Any, fields))
                await pipe.execute()
            # the index is another key (another cluster slot): not in the transaction
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.zadd(self._recent, {record.id: record.created})
                pipe.zremrangebyrank(self._recent, 0, -self._max_recent - 1)
                await pipe.execute()
        except RedisError as exc:
            raise BackendUnavailable(f"redis: {exc}") from exc

    async def get(self, job_id: str) -> JobRecord | None:
        try:
            raw: dict[bytes, bytes] = cast(Any, await self._client.hgetall(self._key(job_id)))
        except RedisError as exc:
            raise BackendUnavailable(f"redis: {exc}") from exc
        if not raw:
            return None
        return self._decode(raw)

    async def recent(self, limit: int = 50) -> list[JobRecord]:
        if limit <= 0:  # ZREVRANGE 0 0 would still give one
            return []
        try:
            ids: list[Any] = await self._client.zrevrange(self._recent, 0, limit - 1)
            if not ids:
                return []
            async with self._client.pipeline(transaction=False) as pipe:
                for job_id in ids:
                    pipe.hgetall(self._key(job_id.decode()))
                raws: list[dict[bytes, bytes]] = await pipe.execute()
            gone = [job_id for job_id, raw in zip(ids, raws, strict=True) if not raw]
            if gone:
                await self._client.zrem(self._recent, *gone)
        except RedisError as exc:
            raise BackendUnavailable(f"redis: {exc}") from exc
        return [self._decode(raw) for raw in raws if raw]

    async def _run(self, job_id: str, mode: str, state: str, fields: dict[str, Any]) -> int:
        try:
            result = await self._write(
                keys=[self._key(job_id)],
                args=[
                    mode,
                    state,
                    self._keep,
                    orjson.dumps(time.time()).decode(),
                    *_encode(fields),
                ],
            )
        except RedisError as exc:
            raise BackendUnavailable(f"redis: {exc}") from exc
        return int(result)

    async def update(self, job_id: str, **fields: Any) -> JobRecord | None:
        if await self._run(job_id, "update", "", fields) == 0:
            return None
        return await self.get(job_id)

    async def transition(self, job_id: str, state: JobState, **fields: Any) -> JobRecord | None:
        if await self._run(job_id, "transition", state.value, fields) != 1:
            return None
        return await self.get(job_id)


# KEYS[1] queue stream; ARGV[1] job id, ARGV[2] max entries (0: unbounded). Entries are
# deleted once their job is done, so the length counts waiting and running jobs.
_PUT = """
local limit = tonumber(ARGV[2])
if limit > 0 and redis.call('XLEN', KEYS[1]) >= limit then return false end
return redis.call('XADD', KEYS[1], '*', 'id', ARGV[1])
"""


class RedisJobQueue:
    """The submitting side: ``put`` appends the job id to the queue stream, atomically
    refusing with :class:`~mianzhang.JobQueueFull` when ``max_queued`` jobs are already
    waiting or running (``None``: unbounded)."""

    def __init__(
        self, client: Client, *, prefix: str = "mz:", max_queued: int | None = None
    ) -> None:
        self._client = client
        self.stream = f"{prefix}jobs:queue"
        self._max = max_queued or 0
        self._put = client.register_script(_PUT)

    async def put(self, job_id: str) -> None:
        try:
            added = await self._put(keys=[self.stream], args=[job_id, self._max])
        except RedisError as exc:
            raise BackendUnavailable(f"redis: {exc}") from exc
        if added is None:
            raise JobQueueFull(f"{self._max} jobs are already queued or running")


class RedisJobWorker:
    """Takes jobs from the queue stream and runs them, ``concurrency`` at a time.

    ``run()`` returns after ``stop`` is set (or raises if cancelled): it stops taking new jobs,
    cancels running ones (which stay pending in Redis and will be re-run by some worker after
    ``visibility_timeout``), and awaits every task it started.
    """

    group = "mz-workers"

    def __init__(
        self,
        client: Client,
        runner: JobRunner,
        *,
        prefix: str = "mz:",
        concurrency: int = 4,
        visibility_timeout: float = 30.0,
        block: float = 1.0,
        consumer: str | None = None,
    ) -> None:
        if concurrency < 1 or visibility_timeout <= 0 or block <= 0:
            raise ValueError("concurrency, visibility_timeout and block must be positive")
        self._client = client
        self._runner = runner
        self.stream = f"{prefix}jobs:queue"
        self._concurrency = concurrency
        self._visibility_ms = int(visibility_timeout * 1000)
        self._block_ms = int(block * 1000)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.completed = 0
        self._running: set[str] = set()  # entry ids this worker is running now
        self._grouped = False  # whether the consumer group is known to exist

    async def _ensure_group(self) -> None:
        try:
            await self._client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _take(self) -> tuple[str, str] | None:
        """A stale entry of a dead worker first, else a new one (blocking up to ``block``)."""
        claimed: Any = await self._client.xautoclaim(
            self.stream, self.group, self.consumer, self._visibility_ms, "0-0", count=1
        )
        entries: list[Any] = claimed[1] if claimed else []
        # our own entry, idle because a heartbeat came late (a stalled loop): still ours,
        # still running here; running it twice in one worker would help nobody
        entries = [e for e in entries if e[0].decode() not in self._running]
        if not entries:
            answer: Any = await self._client.xreadgroup(
                self.group, self.consumer, {self.stream: ">"}, count=1, block=self._block_ms
            )
            entries = answer[0][1] if answer else []
        for entry_id, fields in entries:
            if fields:  # a deleted entry comes back without fields
                return entry_id.decode(), fields[b"id"].decode()
            await self._client.xack(self.stream, self.group, entry_id)
        return None

    async def _heartbeat(self, entry_id: str) -> None:
        while True:
            await asyncio.sleep(self._visibility_ms / 3000)
            with contextlib.suppress(RedisError):
                await self._client.xclaim(
                    self.stream, self.group, self.consumer, 0, [entry_id], justid=True
                )

    async def _run_entry(self, entry_id: str, job_id: str, slots: asyncio.Semaphore) -> None:
        self._running.add(entry_id)
        try:
            async with asyncio.TaskGroup() as group:
                beat = group.create_task(self._heartbeat(entry_id))
                try:
                    state = await self._runner.run(job_id, worker=self.consumer)
                finally:
                    beat.cancel()
            if state is JobState.RUNNING:
                return  # taken over by another worker (lease lost): its entry, not ours
            await self._client.xack(self.stream, self.group, entry_id)
            await self._client.xdel(self.stream, entry_id)
            self.completed += 1
        except RedisError:
            logger.exception("job %s: redis failed; the entry stays pending", job_id)
        finally:
            self._running.discard(entry_id)
            slots.release()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Take and run jobs until ``stop`` is set (see the class docstring); Redis being
        unreachable is logged and retried, never fatal."""
        stop = stop or asyncio.Event()
        slots = asyncio.Semaphore(self._concurrency)
        self._grouped = False  # the group is (re)created at start and after Redis lost it
        async with asyncio.TaskGroup() as group:
            tasks: set[asyncio.Task[None]] = set()
            try:
                while not stop.is_set():
                    await slots.acquire()
                    taken = await self._next_entry()
                    if taken is None:
                        slots.release()
                        continue
                    task = group.create_task(self._run_entry(*taken, slots))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            finally:
                for task in tasks:
                    task.cancel()

    async def _next_entry(self) -> tuple[str, str] | None:
        """The next ``(entry id, job id)`` to run, or ``None``: nothing came within ``block``,
        or Redis failed (logged, then a pause of at most a second)."""
        try:
            if not self._grouped:
                await self._ensure_group()
                self._grouped = True
            return await self._take()
        except RedisError as exc:
            self._grouped = self._grouped and "NOGROUP" not in str(exc)
            logger.warning("job queue unreachable (%s); retrying", exc)
            await asyncio.sleep(min(1.0, self._block_ms / 1000))
            return None
