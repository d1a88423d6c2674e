"""Admission control for password hashing: a bounded queue behind the hashing workers, refusals
at once with a retry-after, deadlines honoured while queued."""

from __future__ import annotations

import asyncio
import threading
import time

import grpc
import pytest

from gatehouse.auth.v1 import accounts_pb2
from tests.authsvc.accounts_support import PASSWORD, client, login, register

WORKERS, QUEUE = 2, 4


@pytest.fixture
def auth_overrides():
    # A little more work per hash than the suite's minimum, so that a burst outruns the workers;
    # failed-login limits out of the way (the burst logs in with the right password anyway).
    return {"hash_workers": WORKERS, "hash_queue": QUEUE, "argon2_time_cost": 4,
            "login_failures_per_ip": 1000, "login_failures_per_user": 1000}


def rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))


def argon2_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("argon2"))


async def timed_login(auth, i: int, *, username: str = "alice", password: str = PASSWORD, timeout: float = 30):
    started = time.perf_counter()
    try:
        await auth.accounts.Login(accounts_pb2.LoginRequest(
            username=username, password=password, client=client(f"198.51.{i // 250}.{i % 250}")), timeout=timeout)
    except grpc.aio.AioRpcError as err:
        return err, time.perf_counter() - started
    return None, time.perf_counter() - started


async def test_a_burst_beyond_the_queue_is_refused_at_once_with_a_retry_after(auth):
    await register(auth, "alice")
    hasher = auth.running.app.hasher
    verified_before, rss_before = hasher.verified, rss_kib()

    results = await asyncio.gather(*(timed_login(auth, i) for i in range(100)))

    accepted = [took for err, took in results if err is None]
    refused = [(err, took) for err, took in results if err is not None]
    assert all(err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for err, _ in refused), \
        {err.code() for err, _ in refused}
    assert len(refused) >= 50 and len(accepted) >= WORKERS + QUEUE, (len(accepted), len(refused))
    for err, _ in refused:
        trailers = dict(err.trailing_metadata())
        assert int(trailers["retry-after"]) >= 1
        assert "busy" in err.details() and "Try again in" in err.details()
    # Refused at once: no waiting for a worker (the admitted ones did).
    refused_times = sorted(took for _, took in refused)
    assert refused_times[len(refused_times) // 2] < sorted(accepted)[len(accepted) // 2]
    # Nothing refused was hashed; never more threads than workers; memory did not follow the burst.
    assert hasher.verified - verified_before == len(accepted)
    assert argon2_threads() <= WORKERS
    assert rss_kib() - rss_before < 150 * 1024
    # Once the burst is over, logins go through again.
    assert (await login(auth, "alice", ip="203.0.113.9")).session_token

    # Deadlines still hold while queued: a call that gives up before its turn is never hashed,
    # and its place in the queue is free again at once.
    before = hasher.verified
    blockers = [asyncio.create_task(timed_login(auth, i)) for i in range(WORKERS)]
    await asyncio.sleep(0.01)
    impatient = await asyncio.gather(*(timed_login(auth, 10 + i, timeout=0.02) for i in range(QUEUE)))
    assert [err.code() for err, _ in impatient] == [grpc.StatusCode.DEADLINE_EXCEEDED] * QUEUE
    assert [err for err, _ in await asyncio.gather(*blockers)] == [None] * WORKERS
    assert hasher.waiting == 0
    await asyncio.sleep(0.3)
    assert hasher.verified - before == WORKERS
