"""The database-backed sliding-window rate limiter, on a migrated database, with a fake clock."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from authsvc.accounts.models import RateLimitHit
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
