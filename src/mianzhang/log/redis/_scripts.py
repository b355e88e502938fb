"""Lua scripts of the Redis event log (Redis >= 7.0: only commands Debian bookworm's 7.0 has).

Layout of one stream (all keys share the hash tag ``{stream}``, so one cluster slot, and every
script names keys of one stream only: they run unchanged on Redis Cluster):

* ``<prefix>{<stream>}:meta`` hash: ``epoch``, ``state`` (open/closed/cancelled/failed), ``created``
  (unix time), ``seq`` (last seq assigned), ``max`` / ``ttl`` (retention, ``""`` = none),
  ``closed`` (unix time), ``run`` (the ``run_id`` of the Redis server that last wrote the
  stream), and the user's meta as ``m:<key>`` fields.
* ``<prefix>{<stream>}:log`` Redis stream: event ``seq`` has entry id ``0-<seq>`` (so XRANGE and
  XREAD address events by seq directly), fields ``p`` (epoch), ``d`` (data), ``e`` (event type,
  only when given). Trimmed exactly (``MAXLEN max``), so the oldest retained seq is known.
  Closing adds the end marker entry ``1-0`` (field ``end``), which sorts after every event and
  wakes blocked ``XREAD``s; XRANGE reads stop at ``0-MAXSEQ`` so they never see it.
* ``<prefix>{<stream>}:idem:<hash of key>`` string ``"<epoch> <seq>"`` with a TTL: the
  append made under an idempotency key.
* ``<prefix>{<stream>}:rdr`` sorted set (instance -> presence expiry, server ms) and
  ``<prefix>{<stream>}:rdc`` hash (instance -> open follow iterators on that instance).
* ``<prefix>{<stream>}:lease`` hash: the producer's lease (``_lease_scripts.py``).
* ``<prefix>{<stream>}:wake`` sharded pub/sub channel (Redis Cluster only): ``append`` and
  ``close`` publish the new seq there (``SPUBLISH``), which wakes the cluster watcher.

Each script is one atomic step, so the meta hash and the log can never disagree.

One server per epoch: replication is asynchronous, so a replica promoted after its master died
(Sentinel or Cluster failover), or a server restarted from a persistence file, may lack the
last writes, and its next appends would reuse seqs already given out with other data. So
``append`` and ``close`` compare the server's ``run_id`` with the one recorded in ``meta``:
another server starts a new epoch (readers get ``Reset("epoch")``, ids are never reused). A
stream written before this field existed adopts the server silently. Costs one ``INFO server``
(about 5 us) per append.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "APPEND",
    "CLOSE",
    "CREATE",
    "INFO",
    "LUA_NOW_MS",
    "LUA_SAME_SERVER",
    "LUA_SERVER_RUN",
    "MAX_ID",
    "PRESENCE",
    "READ",
    "READERS",
    "WATCH_READ",
    "Scripts",
]

MAX_ID = "0-18446744073709551615"  # the largest event id: XRANGE ... MAX_ID excludes the end marker

LUA_SERVER_RUN = """
local function server_run()
  return string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
end
"""

_CREATE_IF_MISSING = (
    LUA_SERVER_RUN
    + """
local function create_if_missing()
  if redis.call('EXISTS', KEYS[1]) == 1 then return false end
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'state', 'open', 'created', ARGV[2],
             'seq', '0', 'max', ARGV[3], 'ttl', ARGV[4], 'run', server_run())
  return true
end
"""
)

# Called with the meta's epoch and run: the epoch to write in (new if another server wrote
# the stream last: writes acknowledged by that one may be missing here).
LUA_SAME_SERVER = """
local function same_server(epoch, run, candidate)
  local here = server_run()
  if run == here then return epoch end
  if run then
    epoch = candidate
    redis.call('HSET', KEYS[1], 'epoch', epoch, 'run', here)
  else
    redis.call('HSET', KEYS[1], 'run', here)
  end
  return epoch
end
"""

# KEYS: meta, log. ARGV: epoch candidate, created, max, ttl, then meta key/value pairs.
# Returns {HGETALL meta, XLEN log}.
CREATE = (
    _CREATE_IF_MISSING
    + """
if create_if_missing() then
  for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], 'm:' .. ARGV[i], ARGV[i + 1]) end
end
return {redis.call('HGETALL', KEYS[1]), redis.call('XLEN', KEYS[2])}
"""
)

# KEYS: meta, log. Returns {HGETALL meta, XLEN log} (an empty meta: no such stream).
INFO = """
return {redis.call('HGETALL', KEYS[1]), redis.call('XLEN', KEYS[2])}
"""

# KEYS: meta, log, and the idempotency key if one is given. ARGV: epoch candidate, created,
# max, ttl (used only if the stream is created here), data, has_event ('1'/'0'), event,
# idempotency ttl in ms ('' without a key), wake channel ('' for none). Returns {epoch, seq}:
# the new event's, or the earlier append's under the same idempotency key in the same epoch;
# false if the stream is closed or cancelled.
APPEND = (
    _CREATE_IF_MISSING
    + LUA_SAME_SERVER
    + """
create_if_missing()
local m = redis.call('HMGET', KEYS[1], 'state', 'epoch', 'max', 'run')
local epoch = same_server(m[2], m[4], ARGV[1])
if KEYS[3] then
  local prev = redis.call('GET', KEYS[3])
  if prev then
    local sep = string.find(prev, ' ', 1, true)
    if sep and string.sub(prev, 1, sep - 1) == epoch then
      return {epoch, tonumber(string.sub(prev, sep + 1))}
    end
  end
end
if m[1] ~= 'open' then return false end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local id = '0-' .. seq
local fields = {'p', epoch, 'd', ARGV[5]}
if ARGV[6] == '1' then fields[5] = 'e'; fields[6] = ARGV[7] end
if m[3] == '' then
  redis.call('XADD', KEYS[2], id, unpack(fields))
else
  redis.call('XADD', KEYS[2], 'MAXLEN', m[3], id, unpack(fields))
end
if KEYS[3] then redis.call('SET', KEYS[3], epoch .. ' ' .. seq, 'PX', ARGV[8]) end
if ARGV[9] ~= '' then redis.call('SPUBLISH', ARGV[9], seq) end
return {epoch, seq}
"""
)

# KEYS: meta, log. ARGV: epoch the reader knows ('' if none), seq it has read up to, count.
# Reads after that seq if the epoch matches and the seq exists, else from the oldest entry.
# Returns false if the stream does not exist, else
# {epoch, state, last seq, id of the oldest retained event or false, entries, max_events}.
READ = f"""
local m = redis.call('HMGET', KEYS[1], 'epoch', 'state', 'seq', 'max')
if not m[1] then return false end
local start = '-'
local after = tonumber(ARGV[2])
if ARGV[1] == m[1] and after <= tonumber(m[3]) then start = '(0-' .. after end
local head = redis.call('XRANGE', KEYS[2], '-', '{MAX_ID}', 'COUNT', 1)
local oldest = false
if head[1] then oldest = head[1][1] end
local entries = {{}}
if tonumber(ARGV[3]) > 0 then
  entries = redis.call('XRANGE', KEYS[2], start, '{MAX_ID}', 'COUNT', ARGV[3])
end
return {{m[1], m[2], m[3], oldest, entries, m[4]}}
"""

# KEYS: meta, log, lease. ARGV: final state, closed time, epoch candidate, wake channel ('' for
# none). Returns false if the stream does not exist, else the state it ends up in
# (idempotent: the first final state is kept). Closing drops the producer's lease.
CLOSE = (
    LUA_SERVER_RUN
    + LUA_SAME_SERVER
    + """
local m = redis.call('HMGET', KEYS[1], 'state', 'ttl', 'epoch', 'run')
if not m[1] then return false end
if m[1] ~= 'open' then return m[1] end
same_server(m[3], m[4], ARGV[3])
if KEYS[3] then redis.call('DEL', KEYS[3]) end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'closed', ARGV[2])
redis.call('XADD', KEYS[2], '1-0', 'end', ARGV[1])
if m[2] ~= '' then
  local ms = math.floor(tonumber(m[2]) * 1000)
  redis.call('PEXPIRE', KEYS[1], ms)
  redis.call('PEXPIRE', KEYS[2], ms)
end
if ARGV[4] ~= '' then redis.call('SPUBLISH', ARGV[4], 'end') end
return ARGV[1]
"""
)

# KEYS: meta and log of several streams of ONE slot (meta1, log1, meta2, log2...). ARGV:
# count, then the seq each was read up to. For each: {epoch, seq, state, max, entries after
# that seq} (epoch false if the stream does not exist). The cluster watcher's read.
WATCH_READ = f"""
local out = {{}}
for i = 1, #KEYS, 2 do
  local m = redis.call('HMGET', KEYS[i], 'epoch', 'seq', 'state', 'max')
  local entries = {{}}
  if m[1] then
    local after = '(0-' .. ARGV[(i + 1) / 2 + 1]
    entries = redis.call('XRANGE', KEYS[i + 1], after, '{MAX_ID}', 'COUNT', ARGV[1])
  end
  out[#out + 1] = {{m[1], m[2], m[3], m[4], entries}}
end
return out
"""

LUA_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: rdr, rdc. ARGV: instance, count, ttl ms. Publishes (or withdraws, count 0) this
# instance's reader count for one stream until server time + ttl.
PRESENCE = (
    LUA_NOW_MS
    + """
if tonumber(ARGV[2]) <= 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  local ttl = tonumber(ARGV[3])
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[1], 2 * ttl)
  redis.call('PEXPIRE', KEYS[2], 2 * ttl)
end
return 1
"""
)

# KEYS: rdr, rdc. Drops instances whose presence expired; returns the sum of the live counts.
READERS = (
    LUA_NOW_MS
    + """
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, inst in ipairs(dead) do redis.call('HDEL', KEYS[2], inst) end
if #dead > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) end
local total = 0
for _, inst in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  total = total + tonumber(redis.call('HGET', KEYS[2], inst) or '0')
end
return total
"""
)


@dataclass(frozen=True, slots=True)
class Scripts:
    """The log's scripts registered on one client. redis-py sends each by its SHA and loads
    it on a ``NOSCRIPT`` reply, so they survive a Redis restart or failover. (Scripts sent in
    pipelines, ``PRESENCE`` and ``WATCH_READ``, are sent whole with ``EVAL`` instead.)"""

    create: Any
    append: Any
    read: Any
    close: Any
    readers: Any
    info: Any

    @classmethod
    def register(cls, client: Any) -> Scripts:
        sources = (CREATE, APPEND, READ, CLOSE, READERS, INFO)
        return cls(*(client.register_script(source) for source in sources))
