"""The options every watcher takes besides its connections, typed once (``Watcher``'s keywords).

``RedisEventLog`` builds one :class:`WatchOptions` from its settings and hands it to whichever
watcher the deployment needs (``_watch_xread.py`` on one server, ``_watch_shards.py`` on a
cluster); each watcher passes it on to ``Watcher.__init__`` unchanged.
"""

from __future__ import annotations

from typing import TypedDict

from ._retry import Backoff

__all__ = ["WatchOptions"]


class WatchOptions(TypedDict):
    """``timeout`` per command; ``cache_size`` events per watched stream; ``validate_interval``
    between checks of the watched epochs; ``reconnect_timeout`` before followers fail;
    ``backoff`` between retries."""

    timeout: float
    cache_size: int
    validate_interval: float
    reconnect_timeout: float
    backoff: Backoff
