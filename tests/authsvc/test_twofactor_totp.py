"""Authenticator apps (TOTP) over real gRPC: setup, every time window, replay (also in parallel),
input normalisation, seed encryption and key rotation, removal. Time moves only by the fake clock."""

from __future__ import annotations

import asyncio
import base64
import re

import grpc
from sqlalchemy import select

from authsvc.twofactor.models import TotpCredential
from gatehouse.auth.v1 import twofactor_pb2
from gatehouse.infra.clock import FakeClock
from tests.authsvc.conftest import auth_settings
from tests.authsvc.twofactor_support import (
    PASSWORD,
    align_clock,
    client,
    code,
    complete,
    enrol_totp,
    events,
    make_user,
    password_login,
    pending_login,
    rpc_error,
    seed_of,
    serve,
    tags,
)


async def test_setup_gives_uri_qr_and_a_160_bit_seed_and_activates_only_once_confirmed(auth):
    align_clock(auth)
    session = await make_user(auth, "alice")
    setup = await auth.twofactor.BeginTotpSetup(twofactor_pb2.BeginTotpSetupRequest(session_token=session))
    assert setup.provisioning_uri.startswith("otpauth://totp/Gatehouse:alice?")
    assert "issuer=Gatehouse" in setup.provisioning_uri
    seed = seed_of(setup.provisioning_uri)
    assert seed == setup.secret and len(base64.b32decode(seed + "=" * (-len(seed) % 8))) >= 20
    assert setup.qr_code_svg.startswith("<svg") and "</svg>" in setup.qr_code_svg
    # Not active yet: a password login gives a session.
    assert (await password_login(auth, "alice")).session_token
    status = await auth.twofactor.GetTwoFactorStatus(twofactor_pb2.GetTwoFactorStatusRequest(session_token=session))
    assert not status.two_factor_enabled and not status.HasField("totp")

    wrong = await rpc_error(auth.twofactor.ConfirmTotpSetup(twofactor_pb2.ConfirmTotpSetupRequest(
        session_token=session, code=code(auth, seed, 5))))
    assert wrong.code() == grpc.StatusCode.INVALID_ARGUMENT and "out of sync" in wrong.details()
    done = await auth.twofactor.ConfirmTotpSetup(twofactor_pb2.ConfirmTotpSetupRequest(
        session_token=session, code=code(auth, seed), client=client()))
    assert len(done.recovery_codes) == 8
    assert all(re.fullmatch(r"[0-9a-f]{16}", c) for c in done.recovery_codes)
    assert len(set(done.recovery_codes)) == 8

    status = await auth.twofactor.GetTwoFactorStatus(twofactor_pb2.GetTwoFactorStatusRequest(session_token=session))
    assert status.two_factor_enabled and status.HasField("totp")
    assert list(status.methods) == ["totp", "recovery_code"] and status.recovery_codes_remaining == 8
    login = await password_login(auth, "alice")
    assert login.second_factor_required and not login.session_token
    assert list(login.second_factor_methods) == ["totp", "recovery_code"]
    assert await tags(auth, "alice", "account:two_factor") == ["account:two_factor:method_added"]
    assert await tags(auth, "alice", "account:recovery_codes") == ["account:recovery_codes:generated"]

    # The confirming code cannot be replayed at login, and the seed is never stored in clear.
    replay = await rpc_error(complete(auth, login.pending_login_token, totp_code=code(auth, seed)))
    assert replay.code() == grpc.StatusCode.UNAUTHENTICATED and "already used" in replay.details()
    async with auth.running.app.db() as s:
        row = await s.scalar(select(TotpCredential))
    assert seed.encode() not in row.seed_ciphertext and row.key_version == 1


async def test_one_app_per_account_setup_expiry_and_verified_email(auth):
    align_clock(auth)
    session = await make_user(auth, "bob")
    await enrol_totp(auth, session)
    again = await rpc_error(auth.twofactor.BeginTotpSetup(twofactor_pb2.BeginTotpSetupRequest(session_token=session)))
    assert again.code() == grpc.StatusCode.ALREADY_EXISTS

    other = await make_user(auth, "carol")
    setup = await auth.twofactor.BeginTotpSetup(twofactor_pb2.BeginTotpSetupRequest(session_token=other))
    auth.clock.advance(11 * 60)
    late = await rpc_error(auth.twofactor.ConfirmTotpSetup(twofactor_pb2.ConfirmTotpSetupRequest(
        session_token=other, code=code(auth, seed_of(setup.provisioning_uri)))))
    assert late.code() == grpc.StatusCode.FAILED_PRECONDITION and "expired" in late.details()

    unverified = await make_user(auth, "dave", verified=False)
    refused = await rpc_error(auth.twofactor.BeginTotpSetup(twofactor_pb2.BeginTotpSetupRequest(
        session_token=unverified)))
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION and "Verify your primary email" in refused.details()
    missing = await rpc_error(auth.twofactor.ConfirmTotpSetup(twofactor_pb2.ConfirmTotpSetupRequest(
        session_token=unverified, code="123456")))
    assert missing.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_every_time_window(auth):
    """±1 step accepted; 2..10 steps away refused as out of sync; 11+ steps refused as incorrect."""
    align_clock(auth)
    session = await make_user(auth, "erin")
    seed, _ = await enrol_totp(auth, session)
    cases = [(-1, "ok"), (0, "ok"), (1, "ok"), (-2, "sync"), (2, "sync"), (-10, "sync"), (10, "sync"),
             (-11, "bad"), (11, "bad"), (-5, "sync"), (7, "sync"), (30, "bad")]
    for offset, expected in cases:
        auth.clock.advance(10 * 60)  # past the previous code and the rate-limit window
        pending = await pending_login(auth, "erin")
        attempt = complete(auth, pending.pending_login_token, totp_code=code(auth, seed, offset))
        if expected == "ok":
            reply = await attempt
            assert reply.session_token and reply.method == "totp", offset
            assert reply.user.two_factor_enabled
            continue
        err = await rpc_error(attempt)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED, offset
        if expected == "sync":
            assert "out of sync" in err.details(), (offset, err.details())
        else:
            assert "incorrect" in err.details() and "sync" not in err.details(), (offset, err.details())
    logins = [(e.tag, e.details["method"], e.details.get("reason", ""))
              for e in await events(auth, username="erin", prefix="account:login")]
    assert logins.count(("account:login:success", "totp", "")) == 3
    assert logins.count(("account:login:failure", "totp", "totp_out_of_sync")) == 6
    assert logins.count(("account:login:failure", "totp", "totp_invalid")) == 3


async def test_replay_and_earlier_steps_are_refused_and_input_is_normalised(auth):
    align_clock(auth)
    session = await make_user(auth, "frank")
    seed, _ = await enrol_totp(auth, session)
    auth.clock.advance(30)
    current = code(auth, seed)
    first = await pending_login(auth, "frank")
    spaced = f" {current[:3]} {current[3:]} "
    assert (await complete(auth, first.pending_login_token, totp_code=spaced)).session_token

    for variant in (current, f"{current[:3]}-{current[3:]}", f"\t{current}\n"):
        again = await pending_login(auth, "frank")
        err = await rpc_error(complete(auth, again.pending_login_token, totp_code=variant))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED and "already used" in err.details()
    # The previous step's code is within ±1 but at or before the last accepted step.
    earlier = await pending_login(auth, "frank")
    err = await rpc_error(complete(auth, earlier.pending_login_token, totp_code=code(auth, seed, -1)))
    assert "already used" in err.details()
    # The next step is fine, even while the clock has not moved (the app runs slightly ahead).
    ahead = await pending_login(auth, "frank")
    assert (await complete(auth, ahead.pending_login_token, totp_code=code(auth, seed, 1))).session_token

    for bad in ("12345", "1234567", "12a456", "", "１２３４５６"):
        pending = await pending_login(auth, "frank")
        err = await rpc_error(complete(auth, pending.pending_login_token, totp_code=bad))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
        assert "6-digit" in err.details()
    refused = [e for e in await tags(auth, "frank", "account:login:failure")]
    assert len(refused) == 4  # malformed input is not an attempt


async def test_parallel_submissions_of_one_code_succeed_exactly_once(auth):
    align_clock(auth)
    session = await make_user(auth, "grace")
    seed, _ = await enrol_totp(auth, session)
    auth.clock.advance(60)
    value = code(auth, seed)
    pendings = [await pending_login(auth, "grace") for _ in range(4)]
    results = await asyncio.gather(*(complete(auth, p.pending_login_token, totp_code=value) for p in pendings),
                                   return_exceptions=True)
    ok = [r for r in results if not isinstance(r, Exception)]
    errors = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(ok) == 1 and len(errors) == 3, results
    assert all(e.code() == grpc.StatusCode.UNAUTHENTICATED and "already used" in e.details() for e in errors)

    # One pending login completed twice at once (with two different valid codes): one session.
    auth.clock.advance(60)
    pending = await pending_login(auth, "grace")
    results = await asyncio.gather(
        complete(auth, pending.pending_login_token, totp_code=code(auth, seed)),
        complete(auth, pending.pending_login_token, totp_code=code(auth, seed, 1)),
        return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) == 1, results
    successes = await events(auth, username="grace", prefix="account:login:success")
    assert [e.details["method"] for e in successes] == ["password", "totp", "totp"]


async def test_removal_needs_the_password_or_a_fresh_login(auth):
    align_clock(auth)
    session = await make_user(auth, "heidi")
    seed, _ = await enrol_totp(auth, session)
    auth.clock.advance(31 * 60)  # the session is no longer fresh
    stale = await rpc_error(auth.twofactor.RemoveTotp(twofactor_pb2.RemoveTotpRequest(session_token=session)))
    assert stale.code() == grpc.StatusCode.PERMISSION_DENIED and "password" in stale.details()
    wrong = await rpc_error(auth.twofactor.RemoveTotp(twofactor_pb2.RemoveTotpRequest(
        session_token=session, password="not the password at all")))
    assert wrong.code() == grpc.StatusCode.INVALID_ARGUMENT
    done = await auth.twofactor.RemoveTotp(twofactor_pb2.RemoveTotpRequest(
        session_token=session, password=PASSWORD, client=client()))
    assert not done.two_factor_enabled
    assert (await password_login(auth, "heidi")).session_token  # back to password only
    missing = await rpc_error(auth.twofactor.RemoveTotp(twofactor_pb2.RemoveTotpRequest(
        session_token=session, password=PASSWORD)))
    assert missing.code() == grpc.StatusCode.NOT_FOUND

    # A session that just completed a two-factor login is fresh: no password needed.
    seed, _ = await enrol_totp(auth, session)
    auth.clock.advance(60)
    pending = await pending_login(auth, "heidi")
    fresh = (await complete(auth, pending.pending_login_token, totp_code=code(auth, seed))).session_token
    assert not (await auth.twofactor.RemoveTotp(twofactor_pb2.RemoveTotpRequest(session_token=fresh))).two_factor_enabled
    assert await tags(auth, "heidi", "account:two_factor") == [
        "account:two_factor:method_added", "account:two_factor:method_removed"] * 2


async def test_seed_keys_rotate_without_locking_anyone_out(make_database_url):
    """Seeds made under key 1 still verify when key 2 is the newest, are re-encrypted under key 2
    on use, and then verify with key 1 gone; with no configured key left, TOTP fails closed."""
    url = make_database_url("authsvc")
    clock = FakeClock()
    key1, key2 = (1, b"\x01" * 32), (2, b"\x02" * 32)
    base = auth_settings(url)

    async def versions(h):
        async with h.running.app.db() as s:
            return [r.key_version for r in await s.scalars(select(TotpCredential))]

    async def login_with_code(h, seed):
        clock.advance(60)
        pending = await pending_login(h, "ivan")
        return await complete(h, pending.pending_login_token, totp_code=code(h, seed))

    async with serve(url, clock, base, totp_keys=(key1,)) as h:
        align_clock(h)
        seed, _ = await enrol_totp(h, await make_user(h, "ivan"))
        assert await versions(h) == [1]
    async with serve(url, clock, base, totp_keys=(key2, key1)) as h:
        assert (await login_with_code(h, seed)).session_token and await versions(h) == [2]
    async with serve(url, clock, base, totp_keys=(key2,)) as h:
        assert (await login_with_code(h, seed)).session_token and await versions(h) == [2]
    async with serve(url, clock, base, totp_keys=((3, b"\x03" * 32),)) as h:
        err = await rpc_error(login_with_code(h, seed))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED and "cannot be checked" in err.details()
