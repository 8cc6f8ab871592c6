"""Jobs in Redis, shared by every API process and worker (keys: `workers.redis_keys`).

The record only changes by applying an event inside a WATCH transaction, so concurrent writers (a worker
finishing, the API cancelling) can never move a job out of a terminal state; the same transaction keeps the
job's owner, its worker's job set and its queue's index (`workers.redis_queue_index`) in step. Text deltas do
not change the record and skip its transaction (a worker's are written together: `append_deltas`). Keys expire
after the retention time.

Workers hold the jobs they run: only the owner may write a job's events, so a worker taken for lost while it
was still running cannot write into a job another worker took over.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import cast

import msgspec
import redis
from redis.asyncio.client import Pipeline

from ocr_engine.request import OcrRequest
from ocr_engine.results import PageResult
from workers.events import TERMINAL_EVENTS, AnyEvent, JobClaimed, JobEvent, JobRequeued, PageFinished, TextDelta
from workers.jobs import JobRecord, JobState
from workers.redis_client import RedisConnection
from workers.redis_keys import (
    cancel_key,
    events_key,
    job_keys,
    owner_key,
    queued_keys,
    record_key,
    request_key,
    worker_jobs_key,
)
from workers.redis_queue_index import QUEUED_PAGES, enter_queue, leave_queue, track_queued

_record_decoder = msgspec.msgpack.Decoder(JobRecord)
_request_decoder = msgspec.msgpack.Decoder(OcrRequest)
_event_decoder = msgspec.msgpack.Decoder(AnyEvent)
_encoder = msgspec.msgpack.Encoder()

# A text delta from the job's owner (ARGV[1]) only. Deltas skip the record's transaction, so the check is one
# atomic script.
_APPEND_IF_OWNER = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('XADD', KEYS[2], '*', 'e', ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"""

IsAlive = Callable[[str], Awaitable[bool]]
# An XREAD reply (RESP2): per stream, its entries as (id, fields).
StreamEntries = list[tuple[bytes, dict[bytes, bytes]]]


def _record(raw: object) -> JobRecord | None:
    """A record as the client returns it: bytes (it never decodes replies), or None when the key is missing."""
    return None if raw is None else _record_decoder.decode(cast(bytes, raw))


def _event(fields: dict[bytes, bytes]) -> JobEvent:
    return _event_decoder.decode(fields[b"e"])


class RedisJobStore:
    def __init__(self, connection: RedisConnection, ttl: int) -> None:
        self.connection = connection
        self.ttl = ttl
        client = connection.client
        self._client = client
        self._append_if_owner = client.register_script(_APPEND_IF_OWNER)
        self._queued_pages = client.register_script(QUEUED_PAGES)

    # ---- the JobStore protocol ----------------------------------------------------------------------------
    async def create(self, record: JobRecord, request: OcrRequest | None) -> None:
        """A queued job enters its queue's index with the very expiry of its record."""
        with self.connection.reachable():
            async with self._client.pipeline() as pipe:
                if request is not None:
                    pipe.set(request_key(record.id), _encoder.encode(request), ex=self.ttl)
                pipe.set(record_key(record.id), _encoder.encode(record), ex=self.ttl)
                if record.state is JobState.QUEUED and record.sharding is None:
                    enter_queue(pipe, record, self.ttl * 1000, self.ttl)
                await pipe.execute()

    async def get(self, job_id: str) -> JobRecord | None:
        with self.connection.reachable():
            return _record(await self._client.get(record_key(job_id)))

    async def get_many(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        with self.connection.reachable():
            raws = await self._client.mget([record_key(job_id) for job_id in job_ids])
        return [_record(raw) for raw in raws]

    async def request(self, job_id: str) -> OcrRequest | None:
        with self.connection.reachable():
            raw = await self._client.get(request_key(job_id))
        return None if raw is None else _request_decoder.decode(cast(bytes, raw))

    async def append(self, job_id: str, event: JobEvent, *, owner: str | None = None) -> bool:
        """`owner` (a worker): only while it holds the job; False, and nothing written, once it was handed to
        another worker."""
        if isinstance(event, TextDelta) and owner is not None:
            (written,) = await self.append_deltas([(job_id, event)], owner=owner)
            return written
        with self.connection.reachable():
            if not isinstance(event, TextDelta):

                async def held(record: JobRecord) -> bool:
                    return owner is None or record.worker == owner

                return await self._transition(job_id, event, held) is not None
            async with self._client.pipeline() as pipe:
                pipe.xadd(events_key(job_id), {"e": _encoder.encode(event)})
                pipe.expire(events_key(job_id), self.ttl)
                await pipe.execute()
            return True

    async def events(self, job_id: str, *, block_ms: int = 5000) -> AsyncIterator[JobEvent]:
        last = "0-0"  # the id of the last entry read
        while True:
            with self.connection.reachable():
                reply = await self._client.xread({events_key(job_id): last}, count=256, block=block_ms)
                if not reply and not await self._client.exists(record_key(job_id)):
                    return
            batches = cast(list[tuple[bytes, StreamEntries]], reply)
            for entry_id, fields in batches[0][1] if batches else ():
                last = entry_id.decode()
                event = _event(fields)
                yield event
                if isinstance(event, TERMINAL_EVENTS):
                    return

    async def request_cancel(self, job_id: str) -> None:
        with self.connection.reachable():
            await self._client.set(cancel_key(job_id), b"1", ex=self.ttl)

    async def delete(self, job_id: str) -> None:
        """Remove the job's keys and its entry in its queue's index (either queue: the record may be gone)."""
        with self.connection.reachable():
            async with self._client.pipeline() as pipe:
                pipe.delete(*job_keys(job_id))
                for background in (False, True):
                    leave_queue(pipe, job_id, background)
                await pipe.execute()

    async def queued_pages(self, background: bool) -> int:
        """Pages of the jobs waiting in the queue whose records have not expired."""
        with self.connection.reachable():
            return int(await self._queued_pages(keys=list(queued_keys(background))))

    # ---- what workers do with the jobs they run ------------------------------------------------------------
    async def claim(self, job_id: str, worker_id: str, is_alive: IsAlive) -> JobRecord | None:
        """Take the job for `worker_id`. None when it is gone, finished, or held by another worker that is still
        alive (a message redelivered while the job runs elsewhere must not start it twice)."""

        async def free(record: JobRecord) -> bool:
            return record.worker in (None, worker_id) or not await is_alive(record.worker)

        with self.connection.reachable():
            return await self._transition(job_id, JobClaimed(worker=worker_id), free)

    async def requeue(self, job_id: str, lost_worker: str, reason: str) -> JobRecord | None:
        """Put a job of a lost worker back in the queued state (None when it finished or moved on meanwhile)."""

        async def still_held(record: JobRecord) -> bool:
            return record.worker == lost_worker

        with self.connection.reachable():
            return await self._transition(job_id, JobRequeued(worker=lost_worker, reason=reason), still_held)

    async def held_by(self, worker_id: str) -> list[str]:
        """The jobs `worker_id` claimed and has not finished (or lost) yet."""
        with self.connection.reachable():
            members = cast(set[bytes], await self._client.smembers(worker_jobs_key(worker_id)))
        return sorted(member.decode() for member in members)

    async def append_deltas(self, deltas: Sequence[tuple[str, TextDelta]], *, owner: str) -> list[bool]:
        """Text deltas of several jobs (job id, delta), in one round trip, each only while `owner` holds its job;
        all or none (one MULTI), so a failed round can be sent again whole. At least once: a round whose reply is
        lost after Redis ran it is sent again, and its text then shows twice in the stream (not in the result)."""
        with self.connection.reachable():
            async with self._client.pipeline() as pipe:
                for job_id, delta in deltas:
                    args: list[bytes | str | int] = [owner, _encoder.encode(delta), self.ttl]
                    await self._append_if_owner(keys=[owner_key(job_id), events_key(job_id)], args=args, client=pipe)
                return [bool(written) for written in await pipe.execute()]

    async def cancels_and_owners(self, job_ids: Sequence[str]) -> list[tuple[bool, str | None]]:
        """For each job, in one round trip: (cancel requested?, the worker holding it)."""
        keys = [key for job_id in job_ids for key in (cancel_key(job_id), owner_key(job_id))]
        with self.connection.reachable():
            values = cast(list[bytes | None], await self._client.mget(keys) if keys else [])
        pairs = zip(values[::2], values[1::2], strict=True)
        return [(cancel is not None, None if owner is None else owner.decode()) for cancel, owner in pairs]

    async def finished_pages(self, job_id: str) -> dict[int, PageResult]:
        """The pages the job's runs so far have finished (their `PageFinished` events), by page index."""
        pages: dict[int, PageResult] = {}
        with self.connection.reachable():
            entries = cast(StreamEntries, await self._client.xrange(events_key(job_id)))
        for _, fields in entries:
            event = _event(fields)
            if isinstance(event, PageFinished) and event.result is not None:
                pages[event.page] = event.result
        return pages

    # ---- the record's transaction -------------------------------------------------------------------------
    async def _transition(
        self, job_id: str, event: JobEvent, when: Callable[[JobRecord], Awaitable[bool]]
    ) -> JobRecord | None:
        """Apply `event` to the record and add it to the stream, atomically; None (nothing written) when the job
        is gone, terminal, or `when` refuses. Retries when another writer changed the record meanwhile."""
        async with self._client.pipeline() as pipe:
            while True:
                try:
                    await pipe.watch(record_key(job_id))
                    record = _record(await pipe.get(record_key(job_id)))
                    if record is None or record.state.terminal:
                        return None
                    if not await when(record):
                        return None
                    before, owner_before = record.state, record.worker
                    record.apply(event)
                    requeued_until = None
                    if before is not JobState.QUEUED and record.state is JobState.QUEUED:
                        requeued_until = await pipe.pttl(record_key(job_id))
                    pipe.multi()
                    pipe.set(record_key(job_id), _encoder.encode(record), keepttl=True)
                    self._track_owner(pipe, job_id, owner_before, None if record.state.terminal else record.worker)
                    track_queued(pipe, before, record, requeued_until, self.ttl)
                    pipe.xadd(events_key(job_id), {"e": _encoder.encode(event)})
                    pipe.expire(events_key(job_id), self.ttl)
                    if isinstance(event, TERMINAL_EVENTS) and not record.keeps_documents:
                        pipe.delete(request_key(job_id))
                    await pipe.execute()
                    return record
                except redis.WatchError:
                    continue

    def _track_owner(self, pipe: Pipeline, job_id: str, before: str | None, after: str | None) -> None:
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
