"""The Redis event log: Redis Streams shared by every process, resumable across restarts.

Needs the ``redis`` extra (``pip install 'mianzhang[redis]'``) and Redis >= 7.0. One URL
selects the deployment (``_connect.py`` has the details)::

    redis://host:6379/0                           one server (rediss://, unix:// too)
    redis+cluster://host:7000,host:7001           a Redis Cluster, from seed nodes
    redis+sentinel://host:26379,host:26380/name   the master Sentinel names ``name``

The package:

* ``_log.py``: :class:`RedisEventLog`, the stream operations (create, append, read, info,
  close, readers) and ``follow``'s set-up;
* ``_follower.py``: one follow iterator's algorithm (Redis reads, the shared cache, resets);
* ``_watch.py``: each followed stream's shared watch and cache, and the watcher's contract;
  ``_watch_xread.py``: the watcher on one server (one shared ``XREAD BLOCK``);
  ``_watch_shards.py`` and ``_shard_pubsub.py``: the watcher on a cluster (sharded pub/sub
  wake-ups, one connection per master, per-slot reads);
* ``_scripts.py``: the key layout and the atomic Lua scripts; ``_keys.py``: key names;
* ``_snapshot.py``: decoding reads; ``_presence.py``: reader counts across processes;
* ``_leases.py``, ``_lease_scripts.py``: producer leases (atomic scripts in each stream's
  slot, the lease index for sweeps); ``_lease_probe.py``: followers' check of idle streams;
* ``_connect.py``: the connection factory; ``_errors.py``: redis-py errors ->
  ``BackendUnavailable``; ``_retry.py``: backoff.

Guarantees (on top of :class:`~mianzhang.log.EventLog`'s):

* ``append`` is one atomic script (create-if-missing, refuse if closed, next seq, exact-trimmed
  ``XADD``): seqs are contiguous per epoch across all processes.
* One process shares ONE watcher among all its local followers of all streams (on one server:
  one blocking ``XREAD`` on one dedicated connection; on a cluster: one sharded pub/sub
  connection per master); caught-up followers take new events from a bounded local cache,
  followers that lag read their own range with ``XRANGE`` through a bounded connection pool
  (``max_connections``). Memory per process: at most ``min(cache_size, max_events)`` cached
  events per watched stream, plus the current read of each follower that is catching up (at
  most ``read_batch`` events: ``FIRST_READ`` until an event's size is known, then about
  ``READ_BYTES`` characters of events the size of the last ones seen; a thousand lagging
  readers of 2 KB events hold about 32 MB, not 200); there is no per-follower queue.
* Every event read is checked for seq continuity and epoch: a follower lapped by trimming, or
  one whose stream lost its history (key expired, ``FLUSHALL``, Redis restarted without
  persistence), gets a ``Reset`` and continues with what exists. Never a silent gap.
* Seqs of one epoch are assigned by one Redis server: after a failover (Sentinel, Cluster) or
  a restart from a persistence file, the server may lack acknowledged writes, so the next
  ``append`` or ``close`` of each stream starts a new epoch (its followers get
  ``Reset("epoch")`` and re-read what exists); an id is never given to two events.
* Redis errors (cluster ones too: ``MOVED`` past redis-py's redirects, ``CLUSTERDOWN``,
  ``TRYAGAIN``, a node's connection refused during a failover) become ``BackendUnavailable``
  (``raise ... from exc``). ``append``, ``read``, ``info``, ``create``, ``close``,
  ``readers`` fail at once while Redis is down (an ``append`` that fails this way may or may
  not have been applied if the connection broke mid-command).
  Followers retry with capped exponential backoff for up to ``reconnect_timeout`` seconds,
  then raise ``BackendUnavailable``. A follower whose stream vanished waits up to
  ``missing_timeout`` seconds for it to be re-created (a new epoch: ``Reset("epoch")``), then
  raises ``StreamNotFound``; if it had already seen the stream closed, it raises at once.
* ``readers()`` counts open follow iterators of every instance (presence expires ``presence_ttl``
  seconds after a process dies).
* Producer leases (``log/_protocol.py``): an expired lease is applied exactly once, by one
  atomic script; followers of an idle stream (idle ``lease_idle`` seconds) have its lease
  checked every ``lease_check`` seconds at most, so they end within ``ttl + lease_check``
  plus a round trip of the producer's death; nothing is added to ``append`` or to delivery.

On one server, the shared read names every watched stream, so its cost per round trip grows
with the number of streams this process follows at once (fine for hundreds; shard processes
for many thousands). On a cluster, a lost wake-up message delays a stream's followers by at
most ``validate_interval`` (every watched stream is re-read that often).
"""

from __future__ import annotations

from ._log import RedisEventLog

__all__ = ["RedisEventLog"]
