"""Password login under attack ("auth service under attack", items 1, 3, 4 and 5): the attacks
sent for real, in parallel, against the real server; the password checks counted by their
answers and their events (each check that fails leaves exactly one `invalid_password` event)."""

from __future__ import annotations

import asyncio
import collections

import grpc
import pytest

from gatehouse.auth.v1 import accounts_pb2
from tests.authsvc.accounts_support import PASSWORD, client, events, register

RE = grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.fixture
def auth_overrides():
    """Room in the hashing queue for every attempt, so that what refuses them here is the rate
    limiter (a full queue refuses a burst before it reaches the limiter: test_accounts_admission)."""
    return {"hash_queue": 1000}

UNAUTH = grpc.StatusCode.UNAUTHENTICATED
OK = grpc.StatusCode.OK


async def attempt(auth, name: str, password: str = "wrong password", *, ip: str = "192.0.2.1",
                  device_token: str = "") -> tuple[grpc.StatusCode, str, int, accounts_pb2.LoginResponse | None]:
    """(code, details, retry-after, reply) of one Login."""
    try:
        reply = await auth.accounts.Login(accounts_pb2.LoginRequest(
            username=name, password=password, client=client(ip), device_token=device_token))
    except grpc.aio.AioRpcError as err:
        retry = int(dict(err.trailing_metadata() or ()).get("retry-after", 0))
        return err.code(), err.details(), retry, None
    return OK, "", 0, reply


def addresses(n: int, prefix: str = "198.51") -> list[str]:
    return [f"{prefix}.{i // 250}.{i % 250 + 1}" for i in range(n)]


async def parallel(auth, names: list[str], ips: list[str], password: str = "wrong password", **kw):
    return await asyncio.gather(*[attempt(auth, name, password, ip=ip, **kw) for name, ip in zip(names, ips)])


def codes(answers) -> collections.Counter:
    return collections.Counter(code for code, *_ in answers)


async def reasons(auth, username: str | None = None) -> collections.Counter:
    return collections.Counter(
        e.details["reason"] for e in await events(auth, "account:login:failure")
        if username is None or e.subject_username == username)


async def test_150_parallel_wrong_passwords_run_only_the_limits_checks(auth):
    """Before: ~130 password checks for a limit of 10, and the right password was accepted
    after 31-44 failures. Now: 10 checks; the other 140 are refused unchecked (and logged)."""
    await register(auth, "alice")
    limit = auth.settings.login_failures_per_user
    answers = await parallel(auth, ["alice"] * 150, addresses(150))  # from 150 addresses: the account's limit
    assert codes(answers) == {UNAUTH: limit, RE: 150 - limit}
    assert await reasons(auth, "alice") == {"invalid_password": limit, "rate_limited": 150 - limit}
    code, details, retry, _ = await attempt(auth, "alice", PASSWORD, ip="203.0.113.9")
    assert code == RE and "for this account" in details and retry == auth.settings.login_window_seconds


async def test_150_parallel_logins_from_one_address_run_only_its_limits_checks(auth):
    for name in ("alice", "bob", "carol"):
        await register(auth, name)
    names = [("alice", "bob", "carol", f"guess{i}")[i % 4] for i in range(150)]
    answers = await parallel(auth, names, ["198.51.100.66"] * 150)
    assert codes(answers) == {UNAUTH: auth.settings.login_failures_per_ip, RE: 150 - auth.settings.login_failures_per_ip}
    assert all("network" in details for code, details, *_ in answers if code == RE)


async def test_username_and_email_share_one_budget_in_parallel(auth):
    await register(auth, "alice", email="Alice.Smith@example.org")
    names = ["alice", "ALICE", "alice.smith@example.org", "Alice.Smith@Example.org"] * 30
    answers = await parallel(auth, names, addresses(120))
    assert codes(answers)[UNAUTH] == auth.settings.login_failures_per_user
    for name in ("alice", "alice.smith@example.org"):
        code, details, retry, _ = await attempt(auth, name, PASSWORD, ip="203.0.113.9")
        assert code == RE and retry == auth.settings.login_window_seconds


async def test_unknown_names_answer_exactly_as_an_account_does(auth):
    """The same attack on an account and on a name with no account (by username and by email):
    the same answers, the same waits, growing alike; an unknown name's spellings share its budget.
    Unknown names' events go to the admin log (no subject user) under a keyed hash."""
    await register(auth, "alice")
    seen = {}
    for spellings in (["alice", "Alice"], ["nobody", "NoBody"], ["alice@example.org", "ALICE@example.org"],
                      ["nobody@example.org", "NOBODY@example.org"]):
        first = auth.clock.now()
        story = []
        for _round in range(3):
            answers = await parallel(auth, spellings * 15, addresses(30, "192.0"))
            story.append({c.name: n for c, n in codes(answers).items()})
            code, details, retry, _ = await attempt(auth, spellings[0], ip="203.0.113.9")
            story.append((code, details, retry))
            auth.clock.advance(seconds=retry)
        seen[spellings[0]] = story
        auth.clock.set(first + __import__("datetime").timedelta(days=2))  # a quiet time before the next name
    assert seen["alice"] == seen["nobody"] == seen["alice@example.org"] == seen["nobody@example.org"]
    window = auth.settings.login_window_seconds
    assert [step[2] for step in seen["alice"][1::2]] == [window, 2 * window, 4 * window]
    unknown = [e for e in await events(auth, "account:login:failure") if not e.subject_user_id]
    assert collections.Counter(e.details["reason"] for e in unknown) == {"unknown_user": 2 * 3 * 10, "rate_limited": 2 * 3 * 21}
    assert len({e.details["name_hash"] for e in unknown}) == 2  # one per name, whatever its spelling
    assert not any("nobody" in str(e).lower() for e in unknown)


async def test_a_day_of_guessing_is_bounded_and_waits_grow(auth):
    """At full speed the wait doubles after each used-up window (up to a day); an attacker who
    stays just under the window's limit is stopped by the daily one. Either way, about a hundred
    guesses a day at most, from any number of addresses."""
    await register(auth, "alice")
    await register(auth, "bob")
    window, per_window = auth.settings.login_window_seconds, auth.settings.login_failures_per_user
    ips = iter(addresses(5000, "10.0"))

    async def one_day(name: str, pace: int | None) -> tuple[int, list[int]]:
        start, guesses, waits = auth.clock.now(), 0, []
        while (auth.clock.now() - start).total_seconds() < 86400:
            for _ in range(pace or per_window + 1):
                code, _details, retry, _ = await attempt(auth, name, ip=next(ips))
                if code == RE:
                    waits.append(retry)
                    auth.clock.advance(seconds=retry)
                    break
                assert code == UNAUTH
                guesses += 1
            else:
                auth.clock.advance(seconds=window)
        return guesses, waits

    guesses, waits = await one_day("alice", pace=None)
    assert waits[:9] == [window * 2 ** i for i in range(9)] and guesses == 90
    guesses, waits = await one_day("bob", pace=per_window - 1)
    assert guesses == auth.settings.login_failures_per_day
    assert len(waits) == 1 and 80000 < waits[0] < 86400  # the rest of the day


async def test_the_owners_device_logs_in_while_the_account_is_under_attack(auth):
    """OWASP's device cookie: a login whose password was right returns a device token; with it,
    the owner logs in while the account's own budget is used up by someone else, and only that
    device's small budget counts its failures. Someone else's token, or a tampered one, is no help."""
    await register(auth, "alice")
    await register(auth, "mallory")
    owner = (await attempt(auth, "alice", PASSWORD, ip="203.0.113.5"))[3]
    assert owner.session_token and owner.device_token
    own_token = (await attempt(auth, "mallory", PASSWORD, ip="198.51.100.200"))[3].device_token

    attack = await parallel(auth, ["alice"] * 150, addresses(150))
    assert codes(attack)[UNAUTH] == auth.settings.login_failures_per_user
    assert (await attempt(auth, "alice", PASSWORD, ip="203.0.113.5"))[0] == RE  # no device token: locked
    # One character of the MAC changed (never to itself: "AA" in place of the last two was the
    # token itself whenever its MAC ended in "AA", about one run in a thousand).
    mac_char = owner.device_token[-5]
    tampered = owner.device_token[:-5] + ("B" if mac_char != "B" else "C") + owner.device_token[-4:]
    assert tampered != owner.device_token
    for token in (own_token, tampered, "garbage"):
        assert (await attempt(auth, "alice", PASSWORD, ip="198.51.100.201", device_token=token))[0] == RE
    code, _, _, reply = await attempt(auth, "alice", PASSWORD, ip="203.0.113.5", device_token=owner.device_token)
    assert code == OK and reply.session_token and reply.device_token

    # The device's own budget: a few typos of the owner (or a thief of the cookie), then that device waits.
    per_device = auth.settings.login_failures_per_device
    typos = [await attempt(auth, "alice", "typo", ip="203.0.113.5", device_token=reply.device_token)
             for _ in range(per_device + 1)]
    assert [code for code, *_ in typos] == [UNAUTH] * per_device + [RE]
    assert "from this device" in typos[-1][1]
    # Guessing with a device token counts once, against that device: the account's events say so.
    assert (await reasons(auth, "alice"))["invalid_password"] == auth.settings.login_failures_per_user + per_device


async def test_a_device_token_serves_every_name_of_its_account_until_it_expires(auth):
    await register(auth, "alice")
    token = (await attempt(auth, "alice", PASSWORD))[3].device_token
    await parallel(auth, ["alice"] * 20, addresses(20))
    assert (await attempt(auth, "alice@example.org", PASSWORD, device_token=token))[0] == OK
    auth.clock.advance(seconds=auth.settings.device_token_lifetime_seconds + 1)
    await parallel(auth, ["alice"] * 20, addresses(20))
    assert (await attempt(auth, "alice@example.org", PASSWORD, device_token=token))[0] == RE
    fresh = (await attempt(auth, "bob-has-no-account", PASSWORD, device_token=token))
    assert fresh[0] == UNAUTH and fresh[3] is None
