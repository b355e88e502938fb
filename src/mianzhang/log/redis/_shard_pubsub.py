"""One cluster node's sharded pub/sub connection for the cluster watcher.

A :class:`ShardSubscriber` holds one dedicated connection to one master (named like the
watcher's, ``mz-watch:<instance>``) subscribed with ``SSUBSCRIBE`` to the wake channels of the
watched streams whose slots that master serves. Its listener task reports, by callback:

* ``ready(channel)``: the server confirmed a subscription; from now on every ``append`` and
  ``close`` of that stream publishes here, so one read after this misses nothing;
* ``message(channel)``: the stream changed;
* ``lost(channel)``: the server dropped a subscription we still want (its slot moved to
  another node: a failover or a resharding);
* ``failed(subscriber)``: the connection broke or the node refused a command (``MOVED``,
  ``CLUSTERDOWN``): every subscription here is gone; the error is in :attr:`error`.

Only the listener reads the connection; commands are written from the watcher's loop (a
full-duplex socket: the replies arrive as pushes the listener reads). Ownership: the
listener task is started by :meth:`open` and cancelled and awaited by :meth:`aclose`, which
also closes the connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from redis.crc import key_slot

from ._errors import REDIS_ERRORS
from ._retry import stop_task

__all__ = ["ShardSubscriber"]

logger = logging.getLogger("mianzhang.log.redis")


def _by_slot(channels: Iterable[str]) -> list[list[str]]:
    """Channels grouped by cluster slot (one ``SSUBSCRIBE`` may name channels of one slot)."""
    groups: defaultdict[int, list[str]] = defaultdict(list)
    for channel in channels:
        groups[key_slot(channel.encode())].append(channel)
    return list(groups.values())


class ShardSubscriber:
    """The sharded subscriptions on one master (see the module docstring)."""

    def __init__(
        self,
        node: Any,
        *,
        client_name: str,
        ready: Callable[[str], None],
        message: Callable[[str], None],
        lost: Callable[[str], None],
        failed: Callable[[ShardSubscriber], None],
    ) -> None:
        self.name: str = node.name
        kwargs = {**node.connection_kwargs, "client_name": client_name}
        self._connection = node.connection_class(**kwargs)
        self._ready, self._message, self._lost, self._failed = ready, message, lost, failed
        self.channels: set[str] = set()  # asked for (confirmed or not)
        self.error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Connect and start listening. Raises redis errors."""
        await self._connection.connect()
        self._task = asyncio.get_running_loop().create_task(
            self._listen(), name=f"mianzhang-watch-shard:{self.name}"
        )

    async def want(self, channels: set[str]) -> None:
        """Subscribe to ``channels`` not yet asked for, unsubscribe from the others. A
        channel counts as asked for before its command is sent (so the server's confirmation
        finds it), and not if sending failed (so the next call sends it again)."""
        for group in _by_slot(channels - self.channels):
            self.channels.update(group)
            try:
                await self._connection.send_command("SSUBSCRIBE", *group)
            except BaseException:
                self.channels.difference_update(group)
                raise
        for group in _by_slot(self.channels - channels):
            self.channels.difference_update(group)  # its confirmation is not a loss
            await self._connection.send_command("SUNSUBSCRIBE", *group)

    async def _listen(self) -> None:
        try:
            while True:
                self._handle(await self._connection.read_response())
        except REDIS_ERRORS as exc:
            logger.debug("sharded pub/sub on %s failed: %r", self.name, exc)
            self.error = exc
            self.channels.clear()
            self._failed(self)

    def _handle(self, reply: Any) -> None:
        kind, channel = reply[0], reply[1]
        if kind == "smessage":
            self._message(channel)
        elif kind == "ssubscribe":
            self._ready(channel)
        elif kind == "sunsubscribe" and channel in self.channels:
            self.channels.discard(channel)  # the server moved the slot away
            self._lost(channel)

    async def aclose(self) -> None:
        """Stop listening and close the connection (idempotent)."""
        task, self._task = self._task, None
        if task is not None:
            await stop_task(task)
        await self._connection.disconnect()
