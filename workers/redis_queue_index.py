"""The index of the jobs waiting in each queue, what admission control's backpressure reads (queued pages).

Per queue (`redis_keys.queued_keys`): a sorted set of job ids scored by when their records expire (ms, Redis's
clock), a hash of their pages, and the sum of those pages. Only the scripts below change them, each keeping the
sum equal to the hash's pages; reading drops the jobs past their expiry, so a job whose record expired while it
waited stops counting with it. A job enters its queue's index with its record and leaves it in the transaction
that starts, ends or deletes it (`workers.redis_store`).
"""

from __future__ import annotations

from redis.asyncio.client import Pipeline

from workers.jobs import JobRecord, JobState
from workers.redis_keys import queued_keys

# What the queue scripts share. KEYS: a queue's keys. `leave` takes a job out of the queue and its pages out of
# the sum, if it is there (twice is once); `tidy` leaves no keys behind an empty queue.
_QUEUE_LUA = """
local function leave(id)
    local pages = redis.call('HGET', KEYS[2], id)
    if pages then
        redis.call('HDEL', KEYS[2], id)
        redis.call('DECRBY', KEYS[3], pages)
    end
    redis.call('ZREM', KEYS[1], id)
end
local function tidy()
    if redis.call('HLEN', KEYS[2]) == 0 then
        redis.call('DEL', KEYS[1], KEYS[3])
    end
end
"""
# ARGV: job id, the ms its record has left to live, its pages, the keys' time to live (s): each key lives that
# long past its newest job, longer than any record in it (records live at most that long), so idle keys go
# without losing a job. The expiry is reckoned on Redis's clock here, in the record's own transaction.
_ENTER = f"""{_QUEUE_LUA}
local now = redis.call('TIME')
local expires_at = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ARGV[2])
leave(ARGV[1])
redis.call('ZADD', KEYS[1], expires_at, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('INCRBY', KEYS[3], ARGV[3])
for _, key in ipairs(KEYS) do
    redis.call('EXPIRE', key, ARGV[4])
end
"""
# ARGV: job id.
_LEAVE = f"""{_QUEUE_LUA}
leave(ARGV[1])
tidy()
"""
# Drops the jobs whose records have expired (Redis expires a key once its time is past: hence the exclusive
# `(now`) and returns the pages of those left: the cost grows with the jobs that expired, not with the queue.
QUEUED_PAGES = f"""{_QUEUE_LUA}
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)) do
    leave(id)
end
tidy()
return tonumber(redis.call('GET', KEYS[3]) or '0')
"""


def enter_queue(pipe: Pipeline, record: JobRecord, lives_ms: int, ttl: int) -> None:
    """In the transaction that writes the record (EVAL, not EVALSHA: nothing to load before MULTI); `lives_ms`:
    what the record has left to live."""
    keys = queued_keys(record.background)
    pipe.eval(_ENTER, len(keys), *keys, record.id, lives_ms, record.pages_total, ttl)


def leave_queue(pipe: Pipeline, job_id: str, background: bool) -> None:
    keys = queued_keys(background)
    pipe.eval(_LEAVE, len(keys), *keys, job_id)


def track_queued(pipe: Pipeline, before: JobState, record: JobRecord, requeued_until: int | None, ttl: int) -> None:
    """Keep the index in step with the record's state change: out when the job starts or ends, back in when it
    is requeued (`requeued_until`: what its record has left to live, read before the transaction)."""
    if before is JobState.QUEUED and record.state is not JobState.QUEUED:
        leave_queue(pipe, record.id, record.background)
    if requeued_until is not None:
        enter_queue(pipe, record, requeued_until, ttl)
