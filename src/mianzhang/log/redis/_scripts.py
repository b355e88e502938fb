"""Lua scripts of the Redis event log (Redis >= 7.0: only commands Debian bookworm's 7.0 has).

Layout of one stream (all keys share the hash tag ``{stream}``, so one cluster slot):

* ``<prefix>{<stream>}:meta`` hash: ``epoch``, ``state`` (open/closed/cancelled), ``created``
  (unix time), ``seq`` (last seq assigned), ``max`` / ``ttl`` (retention, ``""`` = none),
  ``closed`` (unix time), and the user's meta as ``m:<key>`` fields.
* ``<prefix>{<stream>}:log`` Redis stream: event ``seq`` has entry id ``0-<seq>`` (so XRANGE and
  XREAD address events by seq directly), fields ``p`` (epoch), ``d`` (data), ``e`` (event type,
  only when given). Trimmed exactly (``MAXLEN max``), so the oldest retained seq is known.
  Closing adds the end marker entry ``1-0`` (field ``end``), which sorts after every event and
  wakes blocked ``XREAD``s; XRANGE reads stop at ``0-MAXSEQ`` so they never see it.
* ``<prefix>{<stream>}:idem:<hash of key>`` string ``"<epoch> <seq>"`` with a TTL: the
  append made under an idempotency key.
* ``<prefix>{<stream>}:rdr`` sorted set (instance -> presence expiry, server ms) and
  ``<prefix>{<stream>}:rdc`` hash (instance -> open follow iterators on that instance).

Each script is one atomic step, so the meta hash and the log can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["APPEND", "CLOSE", "CREATE", "MAX_ID", "PRESENCE", "READ", "READERS", "Scripts"]

MAX_ID = "0-18446744073709551615"  # the largest event id: XRANGE ... MAX_ID excludes the end marker

_CREATE_IF_MISSING = """
local function create_if_missing()
  if redis.call('EXISTS', KEYS[1]) == 1 then return false end
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'state', 'open', 'created', ARGV[2],
             'seq', '0', 'max', ARGV[3], 'ttl', ARGV[4])
  return true
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

# KEYS: meta, log, and the idempotency key if one is given. ARGV: epoch candidate, created,
# max, ttl (used only if the stream is created here), data, has_event ('1'/'0'), event,
# idempotency ttl in ms. Returns {epoch, seq}: the new event's, or the earlier append's under
# the same idempotency key in the same epoch; false if the stream is closed or cancelled.
APPEND = (
    _CREATE_IF_MISSING
    + """
create_if_missing()
local m = redis.call('HMGET', KEYS[1], 'state', 'epoch', 'max')
if KEYS[3] then
  local prev = redis.call('GET', KEYS[3])
  if prev then
    local sep = string.find(prev, ' ', 1, true)
    if sep and string.sub(prev, 1, sep - 1) == m[2] then
      return {m[2], tonumber(string.sub(prev, sep + 1))}
    end
  end
end
if m[1] ~= 'open' then return false end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local id = '0-' .. seq
local fields = {'p', m[2], 'd', ARGV[5]}
if ARGV[6] == '1' then fields[5] = 'e'; fields[6] = ARGV[7] end
if m[3] == '' then
  redis.call('XADD', KEYS[2], id, unpack(fields))
else
  redis.call('XADD', KEYS[2], 'MAXLEN', m[3], id, unpack(fields))
end
if KEYS[3] then redis.call('SET', KEYS[3], m[2] .. ' ' .. seq, 'PX', ARGV[8]) end
return {m[2], seq}
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

# KEYS: meta, log. ARGV: final state, closed time.
# Returns false if the stream does not exist, else the state it ends up in (idempotent: the
# first final state is kept).
CLOSE = """
local m = redis.call('HMGET', KEYS[1], 'state', 'ttl')
if not m[1] then return false end
if m[1] ~= 'open' then return m[1] end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'closed', ARGV[2])
redis.call('XADD', KEYS[2], '1-0', 'end', ARGV[1])
if m[2] ~= '' then
  local ms = math.floor(tonumber(m[2]) * 1000)
  redis.call('PEXPIRE', KEYS[1], ms)
  redis.call('PEXPIRE', KEYS[2], ms)
end
return ARGV[1]
"""

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: rdr, rdc. ARGV: instance, count, ttl ms. Publishes (or withdraws, count 0) this
# instance's reader count for one stream until server time + ttl.
PRESENCE = (
    _NOW_MS
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
    _NOW_MS
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
    it on a ``NOSCRIPT`` reply, so they survive a Redis restart."""

    create: Any
    append: Any
    read: Any
    close: Any
    readers: Any
    presence: Any

    @classmethod
    def register(cls, client: Any) -> Scripts:
        sources = (CREATE, APPEND, READ, CLOSE, READERS, PRESENCE)
        return cls(*(client.register_script(source) for source in sources))
