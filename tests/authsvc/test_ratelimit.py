"""The database-backed rate limiter (sliding-window hits, atomic attempt slots), on a migrated
database, with a fake clock."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from authsvc.ratelimit import RateLimitCounter, RateLimitHit
from authsvc.errors import RateLimited
from authsvc.ratelimit import PRUNE_EVERY, Limit, RateLimiter, describe_wait
from authsvc.server import MIGRATIONS
from gatehouse.infra.clock import FakeClock
from gatehouse.infra.db import make_engine, make_session_factory, upgrade_async

LIMIT = Limit("test", limit=3, window=60, message="Slow down.")


@pytest.fixture
async def db(make_database_url):
    url = make_database_url("ratelimit")
    await upgrade_async(url, MIGRATIONS)
    engine = make_engine(url)
    yield make_session_factory(engine)
    await engine.dispose()


@pytest.fixture
def clock():
    return FakeClock()


async def hit(db, limiter, subject="alice", limit=LIMIT):
    async with db() as s, s.begin():
        await limiter.hit(s, limit, subject)


async def status(db, limiter, subject="alice", limit=LIMIT):
    async with db() as s:
        return await limiter.status(s, limit, subject)


async def test_sliding_window_and_retry_after(db, clock):
    limiter = RateLimiter(clock)
    for i in range(3):  # hits at t=0, 10, 20
        clock.advance(seconds=10 if i else 0)
        assert not (await status(db, limiter)).limited
        await hit(db, limiter)
    limited = await status(db, limiter)
    assert limited.limited and limited.remaining == 0
    assert limited.retry_after == 40  # the first hit (t=0) leaves the window at t=60; now t=20
    async with db() as s:
        with pytest.raises(RateLimited) as err:
            await limiter.check(s, LIMIT, "alice")
    assert err.value.retry_after == 40 and err.value.message == "Slow down. Try again in 40 seconds."
    assert (await status(db, limiter, "bob")).remaining == 3  # other subjects are separate

    clock.advance(seconds=39)
    assert (await status(db, limiter)).retry_after == 1
    clock.advance(seconds=1)
    now = await status(db, limiter)
    assert not now.limited and now.remaining == 1
    await hit(db, limiter)
    assert (await status(db, limiter)).retry_after == 10  # the t=10 hit leaves at t=70; now t=60


async def test_clear_and_expired_hits_are_deleted(db, clock):
    limiter = RateLimiter(clock)
    for _ in range(3):
        await hit(db, limiter)
    async with db() as s, s.begin():
        await limiter.clear(s, LIMIT, "alice")
    assert (await status(db, limiter)).remaining == 3
    await hit(db, limiter)
    clock.advance(seconds=61)
    await hit(db, limiter)  # drops the expired one of this key
    async with db() as s:
        assert await s.scalar(select(func.count()).select_from(RateLimitHit)) == 1


async def test_periodic_prune_removes_keys_that_never_came_back(db, clock):
    limiter = RateLimiter(clock)
    await hit(db, limiter, "one-off-ip")
    clock.advance(seconds=61)
    for i in range(PRUNE_EVERY - 1):
        await hit(db, limiter, f"s{i}")
    async with db() as s:
        keys = set(await s.scalars(select(RateLimitHit.key)))
    assert "test:one-off-ip" not in keys and len(keys) == PRUNE_EVERY - 1


def test_describe_wait():
    assert describe_wait(1) == "1 second"
    assert describe_wait(45) == "45 seconds"
    assert describe_wait(119) == "119 seconds"
    assert describe_wait(121) == "3 minutes"
    assert describe_wait(3600) == "60 minutes"
    assert describe_wait(2 * 3600) == "120 minutes"
    assert describe_wait(2 * 3600 + 1) == "3 hours"  # the longer waits of a used-up account
    assert describe_wait(86400) == "24 hours"


# -- attempt limits (acquire / release): one atomic upsert per limit ----------------------------

GROWING = Limit("grow", limit=3, window=60, message="Slow down.", max_window=600)


async def acquire(db, limiter, *limits):
    async with db() as s, s.begin():
        return await limiter.acquire(s, [(limit, "alice") for limit in limits or (GROWING,)])


async def test_parallel_attempts_take_exactly_the_limit(db, clock):
    """Fifty sessions ask at once (separate connections on PostgreSQL, the aiosqlite pool on
    SQLite): exactly `limit` get a slot."""
    limiter = RateLimiter(clock)
    taken = await asyncio.gather(*[acquire(db, limiter) for _ in range(50)])
    assert sum(1 for t in taken if t.refused is None) == 3
    assert {t.refused.retry_after for t in taken if t.refused} == {60}


async def test_used_up_windows_in_a_row_double_the_wait_up_to_max_window(db, clock):
    limiter = RateLimiter(clock)
    waits = []
    for _ in range(7):
        while (result := await acquire(db, limiter)).refused is None:
            pass
        waits.append(result.refused.retry_after)
        clock.advance(seconds=result.refused.retry_after)
    assert waits == [60, 120, 240, 480, 600, 600, 600]
    # A window that is not used up starts the count again; so does a long quiet time.
    assert (await acquire(db, limiter)).refused is None
    clock.advance(seconds=600)
    for _ in range(3):
        assert (await acquire(db, limiter)).refused is None
    assert (await acquire(db, limiter)).refused.retry_after == 60
    clock.advance(seconds=60 + 600)
    for _ in range(3):
        assert (await acquire(db, limiter)).refused is None
    assert (await acquire(db, limiter)).refused.retry_after == 60


async def test_release_gives_a_slot_back_and_a_refusal_holds_none(db, clock):
    limiter = RateLimiter(clock)
    other = Limit("other", limit=1, window=60)
    first = await acquire(db, limiter, GROWING, other)
    assert first.refused is None and len(first.slots) == 2
    refused = await acquire(db, limiter, GROWING, other)  # GROWING's slot is given back
    assert refused.limit is other and refused.refused.retry_after == 60
    async with db() as s, s.begin():
        await limiter.release(s, first.slots)
    assert [(await acquire(db, limiter)).refused is None for _ in range(4)] == [True, True, True, False]
    clock.advance(seconds=60)
    assert (await acquire(db, limiter)).refused is None  # a new window (twice as long: the last was used up)
    async with db() as s, s.begin():  # a slot of a window that has ended is not given back to the next one
        await limiter.release(s, first.slots)
        rows = (await s.execute(select(RateLimitCounter.key, RateLimitCounter.hits, RateLimitCounter.strikes))).all()
    assert {key: (hits, strikes) for key, hits, strikes in rows} == {"grow:alice": (1, 1), "other:alice": (0, 0)}


async def test_counters_of_keys_that_never_came_back_are_pruned(db, clock):
    limiter = RateLimiter(clock)
    await acquire(db, limiter)
    clock.advance(seconds=60 + 600)  # the window, then as long as its strikes are remembered
    for i in range(PRUNE_EVERY - 1):
        async with db() as s, s.begin():
            await limiter.acquire(s, [(GROWING, f"s{i}")])
    async with db() as s:
        keys = set(await s.scalars(select(RateLimitCounter.key)))
    assert "grow:alice" not in keys and len(keys) == PRUNE_EVERY - 1


async def test_reset_one_and_release_another(db, clock):
    limiter = RateLimiter(clock)
    other = Limit("other", limit=2, window=60)
    for _ in range(2):
        taken = await acquire(db, limiter, GROWING, other)
    async with db() as s, s.begin():
        await s.run_sync(limiter.reset_and_release_sync, *taken.slots)
        rows = (await s.execute(select(RateLimitCounter.key, RateLimitCounter.hits))).all()
    assert dict(rows) == {"grow:alice": 0, "other:alice": 1}
