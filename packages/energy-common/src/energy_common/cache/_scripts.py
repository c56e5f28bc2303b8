"""Lua scripts run atomically in Redis; each touches exactly one key (cluster-safe)."""

from __future__ import annotations

__all__ = ["RELEASE_LOCK", "SLIDING_WINDOW"]

# KEYS[1] = window key; ARGV = limit, window in microseconds, unique member.
# Server time (TIME) keeps replicas with skewed clocks consistent. Returns
# {allowed, count, microseconds until the oldest entry leaves the window}.
SLIDING_WINDOW = """
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local allowed = 0
if count < limit then
  redis.call('ZADD', key, now, ARGV[3])
  count = count + 1
  allowed = 1
end
redis.call('PEXPIRE', key, math.ceil(window / 1000))
local reset = 0
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
if oldest[2] then
  reset = tonumber(oldest[2]) + window - now
end
return {allowed, count, reset}
"""

# KEYS[1] = lock key; ARGV[1] = the owner's token. Deletes only the owner's lock.
RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
