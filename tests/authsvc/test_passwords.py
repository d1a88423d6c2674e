"""The password policy and the argon2id hasher, as units."""

from __future__ import annotations

import asyncio
import contextvars

import argon2
import pytest

from authsvc.accounts.passwords import MAX_BYTES, PasswordHasher, PasswordPolicy, check_length, normalise
from authsvc.errors import InvalidArgument

LOW = dict(time_cost=2, memory_kib=19456, parallelism=1, workers=2)


@pytest.fixture(scope="module")
def policy():
    return PasswordPolicy()


def test_the_shipped_common_list_is_real(policy):
    assert 10_000 <= len(policy.common) <= 100_000
    for word in ("password", "123456789", "iloveyou", "qwertyuiop", "trustno1"):
        assert word in policy.common
    assert all(w == normalise(w).lower() for w in list(policy.common)[:2000])


@pytest.mark.parametrize("password, reason", [
    ("", "password_missing"),
    ("1234567", "password_too_short"),
    ("sunshine", "password_common"),
    ("SunShine", "password_common"),
    ("ｓｕｎｓｈｉｎｅ", "password_common"),  # fullwidth: NFKC makes it "sunshine"
    ("x" * (MAX_BYTES + 1), "password_too_long"),
    ("€" * 1366, "password_too_long"),  # 4098 bytes in 1366 characters
])
def test_policy_refusals(policy, password, reason):
    with pytest.raises(InvalidArgument) as err:
        policy.check(password)
    assert err.value.reason == reason


def test_policy_accepts_and_normalises(policy):
    assert policy.check("ﬁne ﬁshing rods") == "fine fishing rods"
    assert policy.check("€" * 1365 + "x") == "€" * 1365 + "x"  # 4096 bytes
    assert policy.check("all lowercase words")  # no composition rules
    with pytest.raises(InvalidArgument):
        policy.check("alice.smith", username="Alice.Smith")
    with pytest.raises(InvalidArgument):
        policy.check("a@example.org", email="A@example.org")
    with pytest.raises(InvalidArgument):
        check_length("x" * 4097)


async def test_hash_verify_and_needs_rehash():
    hasher = PasswordHasher(**LOW)
    stronger = PasswordHasher(**{**LOW, "time_cost": 3})
    try:
        stored = await hasher.hash("ｆｕｌｌ width")
        params = argon2.extract_parameters(stored)
        assert params.type is argon2.Type.ID and (params.time_cost, params.memory_cost) == (2, 19456)
        assert await hasher.verify(stored, "full width")
        assert not await hasher.verify(stored, "full widt")
        assert not await hasher.verify("not a hash", "full width")
        assert not await hasher.verify(None, "full width")
        assert not hasher.needs_rehash(stored)
        assert stronger.needs_rehash(stored)
        assert await stronger.verify(stored, "full width")  # old parameters still verify
        assert hasher.needs_rehash("garbage")
    finally:
        hasher.close()
        stronger.close()


async def test_hashing_runs_off_the_event_loop():
    hasher = PasswordHasher(**LOW)
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    try:
        await asyncio.gather(*(hasher.hash(f"password number {i}") for i in range(4)))
    finally:
        task.cancel()
        hasher.close()
    assert ticks >= 5


async def test_the_hasher_admits_workers_plus_queue_and_refuses_the_rest_at_once():
    from authsvc.accounts.passwords import HashingBusy

    hasher = PasswordHasher(**{**LOW, "workers": 1, "time_cost": 8}, queue=1)
    try:
        running = asyncio.create_task(hasher.hash("the first password"))
        waiting = asyncio.create_task(hasher.hash("the second password"))
        await asyncio.sleep(0)
        assert hasher.admitted == 2 and hasher.waiting == 1
        with pytest.raises(HashingBusy) as err:
            await hasher.verify(None, "a third")
        assert err.value.retry_after >= 1 and err.value.reason == "hashing_busy"
        # A request's admission is taken up front and covers every hash inside it.
        await asyncio.gather(running, waiting)
        entered, leave = asyncio.Event(), asyncio.Event()

        async def another_request():
            async with hasher.admission():
                entered.set()
                await leave.wait()

        other = asyncio.create_task(another_request())  # its own context
        await entered.wait()
        async with hasher.admission():
            assert hasher.admitted == 2
            with pytest.raises(HashingBusy):  # a third request, in a context of its own
                await asyncio.create_task(another_request(), context=contextvars.Context())
            # Both places are taken, yet this request's own hashes go through (not admitted again).
            stored = await hasher.hash("inside an admission")
            assert await hasher.verify(stored, "inside an admission")
            assert hasher.admitted == 2
        leave.set()
        await other
        assert hasher.admitted == 0 and hasher.waiting == 0
        # A caller cancelled while it waits is never hashed, and its place is free again.
        before = hasher.hashed
        first = asyncio.create_task(hasher.hash("keeps the worker"))
        impatient = asyncio.create_task(hasher.hash("gives up"))
        await asyncio.sleep(0)
        impatient.cancel()
        await first
        await asyncio.sleep(0.05)
        assert impatient.cancelled() and hasher.hashed - before == 1 and hasher.admitted == 0
    finally:
        hasher.close()
