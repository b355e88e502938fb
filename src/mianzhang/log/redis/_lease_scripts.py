"""Lua scripts of producer leases (the contract: ``log/_protocol.py``, "Producer leases").

The lease of a stream is the hash ``<prefix>{<stream>}:lease`` (same hash tag, so the same
cluster slot, as the stream's ``meta`` and ``log``): ``owner``, ``until`` (Redis server time in
ms: one clock for every instance, whatever their own clocks say), ``final`` (``1``: applying it
ends the stream FAILED; ``0``: the stream stays open), ``n`` and, per stored entry ``i``,
``h<i>`` (``1`` if it has an event name), ``e<i>`` (the name), ``d<i>`` (the data).

Applying a lease is one atomic step in the stream's slot: the stored entries are appended
exactly like ``append`` does (next seqs, exact trimming, the epoch rule of ``_scripts.py``,
the cluster wake-up), then for a final lease the stream ends like ``close`` does (state
``failed``, end marker, expiry), and the lease is deleted. Whoever runs it first wins; everyone
after finds no lease (or a stream that is not open), so it happens exactly once. ``CLOSE``
deletes the lease in the same step that ends the stream, so a lease never outlives it.

Nothing here runs per appended or delivered event: ``APPEND`` does not look at leases (a
FAILED stream refuses appends because its state is not ``open``).
"""

from __future__ import annotations

from ._scripts import LUA_NOW_MS, LUA_SAME_SERVER, LUA_SERVER_RUN

__all__ = ["LEASE", "LEASE_CHECK", "RENEW"]

_APPLY = (
    LUA_SERVER_RUN
    + LUA_SAME_SERVER
    + LUA_NOW_MS
    + """
local function add_event(epoch, maxlen, data, has_event, event, wake)
  local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
  local fields = {'p', epoch, 'd', data}
  if has_event == '1' then fields[5] = 'e'; fields[6] = event end
  if not maxlen or maxlen == '' then
    redis.call('XADD', KEYS[2], '0-' .. seq, unpack(fields))
  else
    redis.call('XADD', KEYS[2], 'MAXLEN', maxlen, '0-' .. seq, unpack(fields))
  end
  if wake ~= '' then redis.call('SPUBLISH', wake, seq) end
end

local function apply_lease(candidate, closed, wake)
  local m = redis.call('HMGET', KEYS[1], 'epoch', 'run', 'max', 'ttl')
  local l = redis.call('HMGET', KEYS[3], 'final', 'n')
  local epoch = same_server(m[1], m[2], candidate)
  for i = 1, tonumber(l[2] or '0') do
    local e = redis.call('HMGET', KEYS[3], 'd' .. i, 'h' .. i, 'e' .. i)
    add_event(epoch, m[3], e[1], e[2], e[3], wake)
  end
  redis.call('DEL', KEYS[3])
  if l[1] ~= '1' then return false end
  redis.call('HSET', KEYS[1], 'state', 'failed', 'closed', closed)
  redis.call('XADD', KEYS[2], '1-0', 'end', 'failed')
  if m[4] and m[4] ~= '' then
    local ms = math.floor(tonumber(m[4]) * 1000)
    redis.call('PEXPIRE', KEYS[1], ms)
    redis.call('PEXPIRE', KEYS[2], ms)
  end
  if wake ~= '' then redis.call('SPUBLISH', wake, 'end') end
  return true
end
"""
)

# KEYS: meta, log, lease. ARGV: owner, ttl ms, final ('1'/'0'), epoch candidate, closed time,
# wake channel ('' for none), then per entry: has event ('1'/'0'), event, data.
# Returns 1 (taken or renewed), 0 (the stream is not open, another owner holds a live final
# lease, or applying the previous owner's lease ended the stream), -1 (no such stream).
LEASE = (
    _APPLY
    + """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return -1 end
if state ~= 'open' then return 0 end
local l = redis.call('HMGET', KEYS[3], 'owner', 'until', 'final')
if l[1] and l[1] ~= ARGV[1] then
  if l[3] == '1' and tonumber(l[2]) > now then return 0 end
  if apply_lease(ARGV[4], ARGV[5], ARGV[6]) then return 0 end
end
redis.call('DEL', KEYS[3])
local n = (#ARGV - 6) / 3
local fields = {'owner', ARGV[1], 'until', now + tonumber(ARGV[2]), 'final', ARGV[3], 'n', n}
for i = 1, n do
  local b = 6 + (i - 1) * 3
  local k = #fields
  fields[k + 1] = 'h' .. i; fields[k + 2] = ARGV[b + 1]
  fields[k + 3] = 'e' .. i; fields[k + 4] = ARGV[b + 2]
  fields[k + 5] = 'd' .. i; fields[k + 6] = ARGV[b + 3]
end
redis.call('HSET', KEYS[3], unpack(fields))
return 1
"""
)

# KEYS: meta, lease. ARGV: owner, ttl ms. Returns 1 if extended, 0 if the lease is not the
# owner's any more or the stream is not open (its producer must stop).
RENEW = (
    LUA_NOW_MS
    + """
if redis.call('HGET', KEYS[1], 'state') ~= 'open' then return 0 end
if redis.call('HGET', KEYS[2], 'owner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], 'until', now + tonumber(ARGV[2]))
return 1
"""
)

# KEYS: meta, log, lease. ARGV: epoch candidate, closed time, wake channel, owner ('' for the
# check-and-end), apply ('1'/'0', with an owner: release). Returns the ms a live lease has left
# (>= 0), -1 (no lease, not the owner's, or the stream is not open: a stale lease is
# dropped), -2 (this call applied the lease), -3 (the owner's lease was dropped unapplied).
LEASE_CHECK = (
    _APPLY
    + """
local l = redis.call('HMGET', KEYS[3], 'owner', 'until')
if not l[1] then return -1 end
if redis.call('HGET', KEYS[1], 'state') ~= 'open' then
  redis.call('DEL', KEYS[3])
  return -1
end
if ARGV[4] ~= '' then
  if l[1] ~= ARGV[4] then return -1 end
  if ARGV[5] ~= '1' then
    redis.call('DEL', KEYS[3])
    return -3
  end
else
  local left = tonumber(l[2]) - now
  if left > 0 then return left end
end
apply_lease(ARGV[1], ARGV[2], ARGV[3])
return -2
"""
)
