"""Admission counters: the sliding request window (and requests given back), job reservations and their pruning,
in memory and in a private redis-server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import redis

from app.admission.redis_store import KEY_PREFIX, RedisAdmissionStore
from app.admission.store import AdmissionStore, MemoryAdmissionStore
from workers.redis_client import RedisConnection

TTL = 600


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


Scenario = Callable[[AdmissionStore], Awaitable[None]]


@pytest.fixture(params=["memory", "redis"])
def with_store(request: pytest.FixtureRequest) -> Callable[[Scenario], None]:
    """Runs a scenario against a fresh store of each kind (Redis: a private redis-server for this module)."""
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None

    def run(scenario: Scenario) -> None:
        async def main() -> None:
            if url is None:
                await scenario(MemoryAdmissionStore())
                return
            async with redis_admission(url) as store:
                await scenario(store)

        asyncio.run(main())

    return run


@asynccontextmanager
async def redis_admission(url: str) -> AsyncIterator[RedisAdmissionStore]:
    """A store on a connection of its own (as each API process has), closed after."""
    connection = RedisConnection(url)
    try:
        yield RedisAdmissionStore(connection, ttl=TTL)
    finally:
        await connection.close()


def new_client() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def new_hit() -> str:
    return uuid.uuid4().hex


# ---------------------------------------------------------------- the request window


def test_the_window_admits_the_limit_then_says_when_a_slot_frees(with_store: Callable[[Scenario], None]) -> None:
    async def scenario(store: AdmissionStore) -> None:
        client, other = new_client(), new_client()
        assert [await store.hit(client, new_hit(), 3, 60.0) for _ in range(3)] == [0.0, 0.0, 0.0]
        wait = await store.hit(client, new_hit(), 3, 60.0)
        assert 0 < wait <= 60
        assert await store.hit(client, new_hit(), 3, 60.0) > 0, "a refused request must not reset or free the window"
        assert await store.hit(other, new_hit(), 3, 60.0) == 0.0, "each client has its own window"

    with_store(scenario)


def test_a_request_given_back_frees_its_place_in_the_window(with_store: Callable[[Scenario], None]) -> None:
    """What admission control does with a request that a job slot or a queue then refuses."""

    async def scenario(store: AdmissionStore) -> None:
        client, other = new_client(), new_client()
        hits = [new_hit() for _ in range(3)]
        assert [await store.hit(client, hit, 3, 60.0) for hit in hits] == [0.0, 0.0, 0.0]
        assert await store.hit(other, hits[1], 3, 60.0) == 0.0
        await store.release_hit(client, hits[1])
        await store.release_hit(client, hits[1])  # giving back twice frees one place, not two
        await store.release_hit(client, "never-counted")
        assert await store.hit(client, new_hit(), 3, 60.0) == 0.0
        assert await store.hit(client, new_hit(), 3, 60.0) > 0
        await store.release_hit(other, hits[1])
        assert [await store.hit(other, new_hit(), 3, 60.0) for _ in range(3)] == [0.0, 0.0, 0.0]

    with_store(scenario)


def test_the_redis_window_slides_and_its_key_expires(redis_url: str) -> None:
    async def scenario() -> None:
        client = new_client()
        async with redis_admission(redis_url) as store:
            assert await store.hit(client, new_hit(), 2, 1.0) == 0.0
            assert await store.hit(client, new_hit(), 2, 1.0) == 0.0
            wait = await store.hit(client, new_hit(), 2, 1.0)
            assert 0 < wait <= 1.0
            with redis.Redis.from_url(redis_url) as plain:
                assert 0 < plain.pttl(f"{KEY_PREFIX}rpm:{client}") <= 1000
            await asyncio.sleep(wait)
            for _ in range(50):  # Redis's clock and ours need not tick alike: ask again until it admits
                if await store.hit(client, new_hit(), 2, 1.0) == 0.0:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the window never freed a slot")

    asyncio.run(scenario())


# ---------------------------------------------------------------- job reservations


def test_reservations_up_to_the_limit_then_pruned_confirmed_released(
    with_store: Callable[[Scenario], None],
) -> None:
    async def scenario(store: AdmissionStore) -> None:
        client, other = new_client(), new_client()
        assert await store.reserve(client, "a", 2)
        assert await store.reserve(client, "b", 2)
        assert not await store.reserve(client, "c", 2)
        held = await store.reservations(client)
        assert set(held) == {"a", "b"} and all(age is not None and 0 <= age < 5 for age in held.values())

        await store.confirm(client, "a")
        assert (await store.reservations(client))["a"] is None
        assert await store.reserve(client, "c", 2, stale=["a"]), "a stale reservation frees its slot"
        assert set(await store.reservations(client)) == {"b", "c"}

        await store.release(client, "b")
        await store.confirm(client, "b")  # confirming a released reservation must not bring it back
        assert set(await store.reservations(client)) == {"c"}
        assert await store.reserve(other, "x", 1), "each client has its own slots"
        assert await store.reservations(new_client()) == {}

    with_store(scenario)


def test_two_api_processes_never_both_take_the_last_slot(redis_url: str) -> None:
    """Many reservations at once from two stores (two connection pools, as two API processes have)."""

    async def scenario() -> None:
        client = new_client()
        async with redis_admission(redis_url) as first, redis_admission(redis_url) as second:
            stores = [first, second]
            attempts = [stores[i % 2].reserve(client, f"job-{i}", 3) for i in range(40)]
            assert sum(await asyncio.gather(*attempts)) == 3
            assert len(await stores[0].reservations(client)) == 3
            with redis.Redis.from_url(redis_url) as plain:
                assert 0 < plain.ttl(f"{KEY_PREFIX}jobs:{client}") <= TTL

    asyncio.run(scenario())
