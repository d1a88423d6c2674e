"""The second-factor limiter under parallel attack ("auth service under attack", item 2): wrong
codes sent together against the real server take at most the limit's number of checks, and the
right code after them is refused, on SQLite (with the loop connection busy, so writes go to the
worker threads) and on PostgreSQL."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import sqlite3

import grpc
from sqlalchemy.engine import make_url

from tests.authsvc.twofactor_support import align_clock, code, complete, enrol_totp, events, make_user, pending_login
from tests.conftest import TEST_DB


@contextlib.asynccontextmanager
async def another_writer(auth, seconds: float = 0.3):
    """On SQLite: another connection holds the write lock for a moment, so the attempts begin
    while the event-loop connection cannot write and go to worker threads (the review's case)."""
    if not TEST_DB.startswith("sqlite"):
        yield
        return
    locker = sqlite3.connect(make_url(auth.settings.database_url).database, isolation_level=None,
                             check_same_thread=False)
    locker.execute("BEGIN IMMEDIATE")
    try:
        yield
        await asyncio.sleep(seconds)
    finally:
        locker.execute("COMMIT")
        locker.close()


def wrong_codes(auth, seed: str, n: int) -> list[str]:
    valid = {code(auth, seed, step) for step in (-1, 0, 1)}
    rng = random.Random(7)
    found: list[str] = []
    while len(found) < n:
        candidate = f"{rng.randrange(10 ** 6):06d}"
        if candidate not in valid:
            found.append(candidate)
    return found


async def outcome(awaitable) -> grpc.StatusCode:
    try:
        await awaitable
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def test_parallel_wrong_codes_take_at_most_the_limit_and_the_right_code_is_refused(auth):
    align_clock(auth)
    seed, _ = await enrol_totp(auth, await make_user(auth, "bob"))
    auth.clock.advance(60)
    token = (await pending_login(auth, "bob")).pending_login_token
    limit = auth.settings.second_factor_failures_per_user
    attempts = [complete(auth, token, ip=f"198.51.{i // 200}.{i % 200}", totp_code=wrong)  # one per address
                for i, wrong in enumerate(wrong_codes(auth, seed, 100))]
    async with another_writer(auth):
        tasks = [asyncio.ensure_future(outcome(a)) for a in attempts]
    answers = collections.Counter(await asyncio.gather(*tasks))
    assert answers == {grpc.StatusCode.UNAUTHENTICATED: limit, grpc.StatusCode.RESOURCE_EXHAUSTED: 100 - limit}
    reasons = collections.Counter(e.details["reason"] for e in await events(auth, username="bob",
                                                                            prefix="account:login:failure"))
    assert reasons == {"totp_invalid": limit, "rate_limited": 100 - limit}  # every refusal is logged

    right = await outcome(complete(auth, token, ip="203.0.113.5", totp_code=code(auth, seed)))
    assert right == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_parallel_codes_from_one_address_take_at_most_its_limit(auth):
    align_clock(auth)
    seeds, tokens = {}, {}
    for name in ("carol", "dave", "erin", "frank"):
        seeds[name], _ = await enrol_totp(auth, await make_user(auth, name))
    auth.clock.advance(60)
    for name in seeds:
        tokens[name] = (await pending_login(auth, name)).pending_login_token
    per_ip = auth.settings.second_factor_failures_per_ip
    attempts = [complete(auth, tokens[name], ip="198.51.100.7", totp_code=wrong)
                for name in seeds for wrong in wrong_codes(auth, seeds[name], 10)]
    async with another_writer(auth):
        tasks = [asyncio.ensure_future(outcome(a)) for a in attempts]
    answers = collections.Counter(await asyncio.gather(*tasks))
    assert answers[grpc.StatusCode.UNAUTHENTICATED] == per_ip
    assert answers[grpc.StatusCode.RESOURCE_EXHAUSTED] == len(attempts) - per_ip


async def test_a_right_code_gives_its_slot_back(auth):
    """Successes do not use up the limit: the right code, then the limit's worth of wrong ones."""
    align_clock(auth)
    seed, _ = await enrol_totp(auth, await make_user(auth, "gina"))
    limit = auth.settings.second_factor_failures_per_user
    for _ in range(3):
        auth.clock.advance(30)
        token = (await pending_login(auth, "gina")).pending_login_token
        assert (await complete(auth, token, totp_code=code(auth, seed))).session_token
    token = (await pending_login(auth, "gina")).pending_login_token
    answers = [await outcome(complete(auth, token, totp_code=wrong)) for wrong in wrong_codes(auth, seed, limit + 1)]
    assert answers == [grpc.StatusCode.UNAUTHENTICATED] * limit + [grpc.StatusCode.RESOURCE_EXHAUSTED]


async def test_used_up_windows_in_a_row_double_the_wait(auth):
    """Guessing codes at full speed: 5 per window, each window twice as long as the last (up to a
    day), so a day holds about 45 guesses instead of 1,440; a right code starts over."""
    align_clock(auth)
    seed, _ = await enrol_totp(auth, await make_user(auth, "hana"))
    window, limit = auth.settings.second_factor_window_seconds, auth.settings.second_factor_failures_per_user
    waits, guesses = [], 0
    while sum(waits) < 86400:
        token = (await pending_login(auth, "hana")).pending_login_token  # a pending login lasts 5 minutes
        for wrong in wrong_codes(auth, seed, limit + 1):
            try:
                await complete(auth, token, totp_code=wrong)
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    waits.append(int(dict(err.trailing_metadata())["retry-after"]))
                    auth.clock.advance(seconds=waits[-1])
                    break
                guesses += 1
    assert waits[:9] == [window * 2 ** i for i in range(9)] and guesses == 9 * limit
    align_clock(auth)
    token = (await pending_login(auth, "hana")).pending_login_token
    assert (await complete(auth, token, totp_code=code(auth, seed))).session_token
    token = (await pending_login(auth, "hana")).pending_login_token
    answers = [await outcome(complete(auth, token, totp_code=wrong)) for wrong in wrong_codes(auth, seed, limit + 1)]
    assert answers[-1] == grpc.StatusCode.RESOURCE_EXHAUSTED and answers.count(grpc.StatusCode.UNAUTHENTICATED) == limit
