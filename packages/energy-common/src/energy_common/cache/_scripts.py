"""Lua scripts run atomically in Redis; each touches exactly one key (cluster-safe)."""

from __future__ import annotations

__all__ = ["RELEASE_LOCK", "SLIDING_WINDOW"]

# KEYS[1] = window key; ARGV = limit, window in microseconds. The member is the server
# time (TIME's own strings: tostring() of a Lua number would round it to 14 digits) plus
# the count before it: unique even for two requests in the same microsecond.
# Server time (TIME) keeps replicas with skewed clocks consistent. A denied request adds
# nothing, so the key's expiry (set at the last add) needs no refresh.
#
# The reply is ONE integer, ((reset_ms * (limit + 1)) + count) * 2 + allowed, because
# parsing an integer reply costs the client far less than an array (see bench_data.py);
# reset_ms is the time until the oldest counted request leaves the window.
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
  redis.call('ZADD', key, now, t[1] .. '.' .. t[2] .. '-' .. count)
  redis.call('PEXPIRE', key, math.ceil(window / 1000))
  count = count + 1
  allowed = 1
end
local reset = window
if count > 1 or allowed == 0 then
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  reset = tonumber(oldest[2]) + window - now
end
local reset_ms = math.ceil(reset / 1000)
if reset_ms < 0 then
  reset_ms = 0
end
return ((reset_ms * (limit + 1)) + count) * 2 + allowed
"""

# KEYS[1] = lock key; ARGV[1] = the owner's token. Deletes only the owner's lock.
RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
