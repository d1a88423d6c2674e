"""The password policy and the argon2id hasher, as units."""

from __future__ import annotations

import asyncio

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
