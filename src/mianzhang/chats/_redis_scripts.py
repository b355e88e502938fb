"""The Lua scripts of the Redis chat store. Each touches exactly one key (``KEYS[1]``), so each
runs atomically on one server, on a Sentinel's master and in a Redis Cluster alike (one slot,
never ``CROSSSLOT``)."""

from __future__ import annotations

__all__ = ["CREATE", "DELETE", "INDEX", "PRUNE", "WRITE"]

CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'meta', ARGV[1], 'messages', ARGV[2], 'rev', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
"""KEYS[1] chat hash; ARGV[1] meta, ARGV[2] messages, ARGV[3] ttl ms. 0 if the id is taken."""

WRITE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local rev = redis.call('HGET', KEYS[1], 'rev') or '0'
if rev ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'meta', ARGV[2], 'messages', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'rev', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""
"""KEYS[1] chat hash; ARGV[1] the revision the change was computed from, ARGV[2] meta,
ARGV[3] messages, ARGV[4] ttl ms. A compare-and-set on the revision: 1 written, 0 another
write got in first (nothing written), -1 the chat is gone. A chat stored without ``rev`` (by
an earlier version) counts as revision 0."""

DELETE = """
local meta = redis.call('HGET', KEYS[1], 'meta')
redis.call('DEL', KEYS[1])
return meta
"""
"""KEYS[1] chat hash. Deletes it; its meta (to find the owner's index), nil if it was gone."""

INDEX = """
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -tonumber(ARGV[3]) - 1)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""
"""KEYS[1] an owner's index; ARGV[1] chat id, ARGV[2] its last update, ARGV[3] the most
entries kept, ARGV[4] ttl ms. ``GT``: of two writers racing, the later update stays (an
index entry's score never goes back); the oldest entries beyond the bound are dropped in the
same step, so the index never holds more."""

PRUNE = """
local removed = 0
for i = 1, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return removed
"""
"""KEYS[1] an owner's index; ARGV id/score pairs seen pointing at no chat of the owner.
Removes each entry only if its score is still the one seen: an id indexed again meanwhile (a
chat re-created under it) stays. How many were removed."""
