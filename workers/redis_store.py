"""Jobs in Redis: a record, the request (document bytes included), a cancel flag and a Stream of events.

Keys expire after the retention time. The record only changes by applying an event inside a WATCH transaction,
so concurrent writers (a worker finishing, the API cancelling) can never move a job out of a terminal state.
Text deltas do not change the record and are appended without a transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from urllib.parse import urlsplit

import msgspec
import redis
import redis.asyncio as aioredis

from ocr_engine.errors import ServiceUnavailable
from ocr_engine.request import OcrRequest
from ocr_engine.results import PageResult
from workers.events import TERMINAL_EVENTS, AnyEvent, JobClaimed, JobEvent, JobRequeued, PageFinished, TextDelta
from workers.jobs import JobRecord, JobState

PREFIX = "ocrserve:job:"
_record_decoder = msgspec.msgpack.Decoder(JobRecord)
_request_decoder = msgspec.msgpack.Decoder(OcrRequest)
_event_decoder = msgspec.msgpack.Decoder(AnyEvent)
_encoder = msgspec.msgpack.Encoder()


def record_key(job_id: str) -> str:
    return f"{PREFIX}{job_id}"


def request_key(job_id: str) -> str:
    return f"{PREFIX}{job_id}:request"


def events_key(job_id: str) -> str:
    return f"{PREFIX}{job_id}:events"


def cancel_key(job_id: str) -> str:
    return f"{PREFIX}{job_id}:cancel"


def owner_key(job_id: str) -> str:
    """The worker that holds the job now; only it may write the job's events (see `JobStore.append`)."""
    return f"{PREFIX}{job_id}:owner"


def worker_jobs_key(worker_id: str) -> str:
    """The jobs a worker holds, so that the jobs of a lost worker can be found and handed back."""
    return f"ocrserve:worker:{worker_id}:jobs"


def _keys(job_id: str) -> list[str]:
    return [record_key(job_id), request_key(job_id), events_key(job_id), cancel_key(job_id), owner_key(job_id)]


# A text delta from the job's owner (ARGV[1]) only: a worker that was declared lost must not write into a job
# another worker now runs. Deltas skip the record's transaction, so the check is one atomic script.
_APPEND_IF_OWNER = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('XADD', KEYS[2], '*', 'e', ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"""


def queued_keys(background: bool) -> tuple[str, str, str]:
    """The jobs waiting in one queue, what admission control's backpressure reads: a sorted set of job ids scored
    by when their records expire (ms, Redis's clock), a hash of their pages, and the sum of those pages. Only the
    scripts below change them, each keeping the sum equal to the hash's pages; reading drops the jobs past their
    expiry, so a job whose record expired while it waited stops counting with it."""
    queue = "background" if background else "interactive"
    return f"ocrserve:queued:{queue}", f"ocrserve:queued:{queue}:pages", f"ocrserve:queued:{queue}:total"


# What the queue scripts share. KEYS: a queue's keys (see queued_keys). `leave` takes a job out of the queue and
# its pages out of the sum, if it is there (twice is once); `tidy` leaves no keys behind an empty queue.
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
_ENTER_QUEUE = f"""{_QUEUE_LUA}
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
_LEAVE_QUEUE = f"""{_QUEUE_LUA}
leave(ARGV[1])
tidy()
"""
# Drops the jobs whose records have expired (Redis expires a key once its time is past: hence the exclusive
# `(now`) and returns the pages of those left: the cost grows with the jobs that expired, not with the queue.
_QUEUED_PAGES = f"""{_QUEUE_LUA}
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)) do
    leave(id)
end
tidy()
return tonumber(redis.call('GET', KEYS[3]) or '0')
"""


def _enter_queue(pipe: redis.client.Pipeline, record: JobRecord, lives_ms: int, ttl: int) -> None:
    """In the transaction that writes the record (EVAL, not EVALSHA: nothing to load before MULTI); `lives_ms`:
    what the record has left to live."""
    keys = queued_keys(record.background)
    pipe.eval(_ENTER_QUEUE, len(keys), *keys, record.id, lives_ms, record.pages_total, ttl)


def _leave_queue(pipe: redis.client.Pipeline, job_id: str, background: bool) -> None:
    keys = queued_keys(background)
    pipe.eval(_LEAVE_QUEUE, len(keys), *keys, job_id)


def _requeued_until(pipe: redis.client.Pipeline, job_id: str, before: JobState, record: JobRecord) -> int | None:
    """When a change puts a job back in its queue (requeued), the ms its record has left to live; else None.
    Read while the record is WATCHed, before MULTI."""
    if before is JobState.QUEUED or record.state is not JobState.QUEUED:
        return None
    return pipe.pttl(record_key(job_id))


def _track_queued(
    pipe: redis.client.Pipeline, before: JobState, record: JobRecord, requeued_until: int | None, ttl: int
) -> None:
    """Keep the queues in step with the record's state change: out when the job starts or ends, back in when it
    is requeued (see `_requeued_until`)."""
    if before is JobState.QUEUED and record.state is not JobState.QUEUED:
        _leave_queue(pipe, record.id, record.background)
    if requeued_until is not None:
        _enter_queue(pipe, record, requeued_until, ttl)


class JobStore:
    """Synchronous access, for workers (and for the API's rare writes, from a thread)."""

    def __init__(self, client: redis.Redis, ttl: int) -> None:
        self.client = client
        self.ttl = ttl
        self._append_if_owner = client.register_script(_APPEND_IF_OWNER)

    @classmethod
    def connect(cls, url: str, ttl: int) -> JobStore:
        return cls(redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10), ttl)

    def create(self, record: JobRecord, request: OcrRequest) -> None:
        """Store a new job; a queued one enters its queue with the very expiry of its record."""
        with self.client.pipeline() as pipe:
            pipe.set(request_key(record.id), _encoder.encode(request), ex=self.ttl)
            pipe.set(record_key(record.id), _encoder.encode(record), ex=self.ttl)
            if record.state is JobState.QUEUED:
                _enter_queue(pipe, record, self.ttl * 1000, self.ttl)
            pipe.execute()

    def create_parent(self, record: JobRecord, request: OcrRequest | None) -> None:
        """Store a sharded job's parent: a record (and its request when it keeps its documents), never queued
        (its children are)."""
        with self.client.pipeline() as pipe:
            if request is not None:
                pipe.set(request_key(record.id), _encoder.encode(request), ex=self.ttl)
            pipe.set(record_key(record.id), _encoder.encode(record), ex=self.ttl)
            pipe.execute()

    def get(self, job_id: str) -> JobRecord | None:
        raw = self.client.get(record_key(job_id))
        return None if raw is None else _record_decoder.decode(raw)

    def finished_pages(self, job_id: str) -> dict[int, PageResult]:
        """The pages the job's runs so far have finished (their `PageFinished` events), by page index."""
        pages: dict[int, PageResult] = {}
        for _, fields in self.client.xrange(events_key(job_id)):
            event = _event_decoder.decode(fields[b"e"])
            if isinstance(event, PageFinished) and event.result is not None:
                pages[event.page] = event.result
        return pages

    def load_request(self, job_id: str) -> OcrRequest | None:
        raw = self.client.get(request_key(job_id))
        return None if raw is None else _request_decoder.decode(raw)

    def append(self, job_id: str, event: JobEvent, *, owner: str | None = None) -> bool:
        """Add an event; False (and nothing written) when the job is gone or already terminal, or when `owner`
        (a worker) no longer holds the job: it was handed to another worker meanwhile."""
        if isinstance(event, TextDelta):
            if owner is not None:
                args = [owner, _encoder.encode(event), self.ttl]
                return bool(self._append_if_owner(keys=[owner_key(job_id), events_key(job_id)], args=args))
            with self.client.pipeline() as pipe:
                pipe.xadd(events_key(job_id), {"e": _encoder.encode(event)})
                pipe.expire(events_key(job_id), self.ttl)
                pipe.execute()
            return True
        when = None if owner is None else (lambda record: record.worker == owner)
        return self._transition(job_id, event, when=when) is not None

    def cancel_and_owner(self, job_id: str) -> tuple[bool, str | None]:
        """(cancel requested?, the worker holding the job): what a running job checks between decode steps."""
        cancel, owner = self.client.mget([cancel_key(job_id), owner_key(job_id)])
        return cancel is not None, None if owner is None else owner.decode()

    def held_by(self, worker_id: str) -> list[str]:
        """The jobs `worker_id` claimed and has not finished (or lost) yet."""
        return sorted(member.decode() for member in self.client.smembers(worker_jobs_key(worker_id)))

    def claim(self, job_id: str, worker_id: str, is_alive: Callable[[str], bool]) -> JobRecord | None:
        """Take the job for `worker_id`. None when it is gone, finished, or claimed by another worker that is
        still alive (a message redelivered while the job runs elsewhere must not start it twice)."""

        def free(record: JobRecord) -> bool:
            return record.worker in (None, worker_id) or not is_alive(record.worker)

        return self._transition(job_id, JobClaimed(worker=worker_id), when=free)

    def requeue(self, job_id: str, lost_worker: str, reason: str) -> JobRecord | None:
        """Put a job of a lost worker back in the queued state (None when it finished or moved on meanwhile)."""
        event = JobRequeued(worker=lost_worker, reason=reason)
        return self._transition(job_id, event, when=lambda record: record.worker == lost_worker)

    def _transition(
        self, job_id: str, event: JobEvent, when: Callable[[JobRecord], bool] | None = None
    ) -> JobRecord | None:
        """Apply `event` to the record and add it to the stream, atomically; None (nothing written) when the job
        is gone, terminal, or `when` refuses. Retries when another writer changed the record meanwhile."""
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(record_key(job_id))
                    raw = pipe.get(record_key(job_id))
                    if raw is None:
                        return None
                    record = _record_decoder.decode(raw)
                    if record.state.terminal or (when is not None and not when(record)):
                        return None
                    before = record.state
                    owner_before = record.worker
                    record.apply(event)
                    requeued_until = _requeued_until(pipe, job_id, before, record)
                    pipe.multi()
                    pipe.set(record_key(job_id), _encoder.encode(record), keepttl=True)
                    self._track_owner(pipe, job_id, owner_before, None if record.state.terminal else record.worker)
                    _track_queued(pipe, before, record, requeued_until, self.ttl)
                    pipe.xadd(events_key(job_id), {"e": _encoder.encode(event)})
                    pipe.expire(events_key(job_id), self.ttl)
                    if isinstance(event, TERMINAL_EVENTS) and not record.keeps_documents:
                        pipe.delete(request_key(job_id))
                    pipe.execute()
                    return record
                except redis.WatchError:
                    continue

    def _track_owner(self, pipe: redis.client.Pipeline, job_id: str, before: str | None, after: str | None) -> None:
        """Keep the owner key and the workers' job sets in step with the record (in its transaction)."""
        if before == after:
            return
        if before is not None:
            pipe.srem(worker_jobs_key(before), job_id)
        if after is None:
            pipe.delete(owner_key(job_id))
            return
        pipe.set(owner_key(job_id), after, ex=self.ttl)
        pipe.sadd(worker_jobs_key(after), job_id)
        pipe.expire(worker_jobs_key(after), self.ttl)

    def request_cancel(self, job_id: str) -> None:
        self.client.set(cancel_key(job_id), b"1", ex=self.ttl)

    def cancel_requested(self, job_id: str) -> bool:
        return bool(self.client.exists(cancel_key(job_id)))

    def delete(self, job_id: str) -> None:
        """Remove the job's keys and its entry in its queue (either one: the record may be gone already)."""
        with self.client.pipeline() as pipe:
            pipe.delete(*_keys(job_id))
            for background in (False, True):
                _leave_queue(pipe, job_id, background)
            pipe.execute()


class AsyncJobReader:
    """Non-blocking reads for the API: records, and events followed with XREAD BLOCK."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._queued_pages = client.register_script(_QUEUED_PAGES)

    @classmethod
    def connect(cls, url: str) -> AsyncJobReader:
        return cls(aioredis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=30))

    async def get(self, job_id: str) -> JobRecord | None:
        raw = await self.client.get(record_key(job_id))
        return None if raw is None else _record_decoder.decode(raw)

    async def get_many(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        """Several records in one round trip (a sharded job's children)."""
        raws = await self.client.mget([record_key(job_id) for job_id in job_ids])
        return [None if raw is None else _record_decoder.decode(raw) for raw in raws]

    async def events(self, job_id: str, *, block_ms: int = 5000) -> AsyncIterator[JobEvent]:
        """Every event from the first; ends after the terminal one, or when the job disappears."""
        last = "0-0"
        while True:
            batches = await self.client.xread({events_key(job_id): last}, count=256, block=block_ms)
            if not batches:
                if not await self.client.exists(record_key(job_id)):
                    return
                continue
            for entry_id, fields in batches[0][1]:
                last = entry_id
                event = _event_decoder.decode(fields[b"e"])
                yield event
                if isinstance(event, TERMINAL_EVENTS):
                    return

    async def queued_pages(self, background: bool) -> int:
        """Pages of the jobs waiting in the queue whose records have not expired (see `queued_keys`)."""
        return int(await self._queued_pages(keys=list(queued_keys(background))))

    async def close(self) -> None:
        await self.client.aclose()


def redis_location(url: str) -> str:
    """`host:port` of a Redis URL, for messages (the URL itself may carry a password)."""
    location = urlsplit(url)
    return f"{location.hostname}:{location.port or 6379}"


@contextlib.contextmanager
def unavailable_as_503(where: str) -> Iterator[None]:
    """A Redis that cannot be reached (at `where`, see redis_location) as ServiceUnavailable: a 503 that names
    OCRSERVE_REDIS_URL."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError, ConnectionError, OSError) as exc:
        raise ServiceUnavailable(f"cannot reach Redis at {where} (OCRSERVE_REDIS_URL): {exc}") from exc
