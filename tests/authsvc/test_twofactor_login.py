"""The second step of a login and what surrounds it: recovery codes, the one limiter across all
methods (per user and per IP), pending logins, password reset, email notices."""

from __future__ import annotations

import re

import grpc
import pytest
from sqlalchemy import func, select

from authsvc.accounts.models import Session
from authsvc.twofactor.models import PendingLogin
from gatehouse.auth.v1 import accounts_pb2, admin_pb2, twofactor_pb2
from tests.authsvc.softauthn import SoftAuthenticator
from tests.authsvc.twofactor_support import (
    PASSWORD,
    align_clock,
    client,
    code,
    complete,
    enrol_key,
    enrol_totp,
    events,
    key_login,
    make_user,
    password_login,
    pending_login,
    rpc_error,
    tags,
    wait_for_mail,
)


@pytest.fixture
def mailbox(smtp_server):
    return smtp_server[1]


@pytest.fixture
def auth_overrides(smtp_server):
    return {"smtp_url": smtp_server[0]}


async def test_recovery_codes_work_once_notify_and_regenerate(auth, mailbox):
    align_clock(auth)
    session = await make_user(auth, "alice")
    _, codes = await enrol_totp(auth, session)
    pending = await pending_login(auth, "alice")
    typed = codes[0].upper()[:8] + "-" + codes[0].upper()[8:]
    reply = await complete(auth, pending.pending_login_token, recovery_code=typed)
    assert reply.session_token and reply.method == "recovery_code" and reply.recovery_codes_remaining == 7
    again = await pending_login(auth, "alice")
    used = await rpc_error(complete(auth, again.pending_login_token, recovery_code=codes[0]))
    assert used.code() == grpc.StatusCode.UNAUTHENTICATED and "already used" in used.details()
    malformed = await rpc_error(complete(auth, again.pending_login_token, recovery_code="not-a-code"))
    assert malformed.code() == grpc.StatusCode.INVALID_ARGUMENT
    notice = next(m for m in await wait_for_mail(mailbox, "alice@example.org", 3)
                  if m["Subject"] == "A recovery code was used to log in")
    assert "7 unused codes remain" in notice.get_content()
    assert codes[1] not in notice.get_content()
    used_events = await events(auth, username="alice", prefix="account:recovery_codes:used")
    assert [dict(e.details) for e in used_events] == [{"remaining": "7"}]

    # Regenerating voids every earlier code and needs the password once the session is not fresh.
    auth.clock.advance(31 * 60)
    stale = await rpc_error(auth.twofactor.RegenerateRecoveryCodes(twofactor_pb2.RegenerateRecoveryCodesRequest(
        session_token=session)))
    assert stale.code() == grpc.StatusCode.PERMISSION_DENIED
    fresh = await auth.twofactor.RegenerateRecoveryCodes(twofactor_pb2.RegenerateRecoveryCodesRequest(
        session_token=session, password=PASSWORD, client=client()))
    assert len(fresh.recovery_codes) == 8 and not set(fresh.recovery_codes) & set(codes)
    pending = await pending_login(auth, "alice")
    old = await rpc_error(complete(auth, pending.pending_login_token, recovery_code=codes[1]))
    assert old.code() == grpc.StatusCode.UNAUTHENTICATED
    assert (await complete(auth, pending.pending_login_token, recovery_code=fresh.recovery_codes[3])).session_token
    assert await tags(auth, "alice", "account:recovery_codes") == [
        "account:recovery_codes:generated", "account:recovery_codes:used", "account:recovery_codes:regenerated",
        "account:recovery_codes:used"]
    subjects = [m["Subject"] for m in await wait_for_mail(mailbox, "alice@example.org", 5)]
    assert sorted(subjects) == sorted(["A second factor was added to your account", "Recovery codes for your account",
                                       "A recovery code was used to log in", "Recovery codes for your account",
                                       "A recovery code was used to log in"])


async def test_one_limiter_across_methods_per_user(auth):
    align_clock(auth)
    session = await make_user(auth, "bob")
    seed, codes = await enrol_totp(auth, session)
    key = SoftAuthenticator()
    await enrol_key(auth, session, key)
    auth.clock.advance(60)
    pending = await pending_login(auth, "bob")
    token = pending.pending_login_token
    for proof in ({"totp_code": "000000" if code(auth, seed) != "000000" else "111111"},
                  {"recovery_code": "0" * 16}, {"totp_code": code(auth, seed, 12)}, {"recovery_code": "f" * 16}):
        assert (await rpc_error(complete(auth, token, **proof))).code() == grpc.StatusCode.UNAUTHENTICATED
    err = await rpc_error(key_login(auth, "bob", key, origin="https://evil.example"))  # the fifth failure
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED

    limited = await rpc_error(complete(auth, token, totp_code=code(auth, seed)))  # correct, but limited
    assert limited.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "Try again in" in limited.details()
    retry = dict(limited.trailing_metadata() or ())
    assert 1 <= int(retry["retry-after"]) <= 300
    assert (await rpc_error(complete(auth, token, recovery_code=codes[0]))).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (await rpc_error(key_login(auth, "bob", key))).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    reasons = [e.details["reason"] for e in await events(auth, username="bob", prefix="account:login:failure")]
    assert reasons[:5] == ["totp_invalid", "recovery_code_invalid", "totp_invalid", "recovery_code_invalid",
                           "webauthn_wrong_origin"]
    assert reasons[5:] == ["rate_limited"] * 3

    auth.clock.advance(int(retry["retry-after"]))
    pending = await pending_login(auth, "bob")
    assert (await complete(auth, pending.pending_login_token, totp_code=code(auth, seed))).session_token


async def test_limiter_per_ip(auth):
    align_clock(auth)
    seeds = {}
    for name in ("carol", "dave", "erin"):
        seeds[name], _ = await enrol_totp(auth, await make_user(auth, name))
    auth.clock.advance(60)
    for name in ("carol", "dave"):
        pending = await pending_login(auth, name)
        for wrong in range(5 if name == "carol" else 4):
            await rpc_error(complete(auth, pending.pending_login_token, ip="198.51.100.7",
                                     recovery_code=f"{wrong:016x}"))
    # Ten failures from that address: Erin (no failures of her own) is refused from it, not elsewhere.
    dave = await pending_login(auth, "dave")
    await rpc_error(complete(auth, dave.pending_login_token, ip="198.51.100.7", recovery_code="e" * 16))
    erin = await pending_login(auth, "erin")
    limited = await rpc_error(complete(auth, erin.pending_login_token, ip="198.51.100.7",
                                       totp_code=code(auth, seeds["erin"])))
    assert limited.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "network" in limited.details()
    ok = await complete(auth, erin.pending_login_token, ip="203.0.113.9", totp_code=code(auth, seeds["erin"]))
    assert ok.session_token


async def test_pending_logins_are_short_lived_single_use_and_stored_hashed(auth):
    align_clock(auth)
    session = await make_user(auth, "frank")
    seed, _ = await enrol_totp(auth, session)
    auth.clock.advance(60)
    pending = await pending_login(auth, "frank")
    async with auth.running.app.db() as s:
        stored = list(await s.scalars(select(PendingLogin.token_hash)))
    assert stored and all(pending.pending_login_token.encode() not in h for h in stored)
    auth.clock.advance(301)
    expired = await rpc_error(complete(auth, pending.pending_login_token, totp_code=code(auth, seed)))
    assert expired.code() == grpc.StatusCode.UNAUTHENTICATED and "expired" in expired.details()
    for bogus in ("", "x" * 43, "y" * 500):
        err = await rpc_error(complete(auth, bogus, totp_code=code(auth, seed)))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    pending = await pending_login(auth, "frank")
    assert (await complete(auth, pending.pending_login_token, totp_code=code(auth, seed))).session_token
    auth.clock.advance(30)
    again = await rpc_error(complete(auth, pending.pending_login_token, totp_code=code(auth, seed)))
    assert again.code() == grpc.StatusCode.UNAUTHENTICATED
    # An account disabled between the two steps cannot finish logging in.
    pending = await pending_login(auth, "frank")
    await auth.admin.SetUserActive(admin_pb2.AdminSetUserActiveRequest(username="frank", active=False,
                                                                        reason="test"))
    auth.clock.advance(30)
    disabled = await rpc_error(complete(auth, pending.pending_login_token, totp_code=code(auth, seed)))
    assert disabled.code() == grpc.StatusCode.UNAUTHENTICATED
    wrong_password = await rpc_error(password_login(auth, "frank", "wrong password entirely"))
    assert wrong_password.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_password_reset_does_not_bypass_the_second_factor(auth, mailbox):
    align_clock(auth)
    session = await make_user(auth, "grace")
    seed, _ = await enrol_totp(auth, session)
    await auth.accounts.RequestPasswordReset(accounts_pb2.RequestPasswordResetRequest(
        username_or_email="grace", client=client()))
    reset_mail = next(m for m in await wait_for_mail(mailbox, "grace@example.org", 3)
                      if m["Subject"] == "Reset your password")
    from urllib.parse import unquote

    token = unquote(re.search(r"\?token=([A-Za-z0-9_%-]+)", reset_mail.get_content()).group(1))
    async with auth.running.app.db() as s:
        before = await s.scalar(select(func.count()).select_from(Session))
    reply = await auth.accounts.ResetPassword(accounts_pb2.ResetPasswordRequest(
        token=token, new_password="a brand new passphrase", client=client()))
    assert reply.second_factor_required
    async with auth.running.app.db() as s:
        after = await s.scalar(select(func.count()).select_from(Session))
        live = await s.scalar(select(func.count()).select_from(Session).where(Session.revoked_at.is_(None)))
    assert after == before and live == 0  # no session was created, and the old ones ended
    login = await password_login(auth, "grace", "a brand new passphrase")
    assert login.second_factor_required and not login.session_token
    auth.clock.advance(30)
    assert (await complete(auth, login.pending_login_token, totp_code=code(auth, seed))).session_token


async def test_every_change_sends_a_notice(auth, mailbox):
    align_clock(auth)
    session = await make_user(auth, "heidi")
    await enrol_totp(auth, session)
    key = (await enrol_key(auth, session, SoftAuthenticator(), "Blue")).key
    await auth.twofactor.RenameWebAuthnKey(twofactor_pb2.RenameWebAuthnKeyRequest(
        session_token=session, key_id=key.id, label="Blue key"))
    await auth.twofactor.RemoveWebAuthnKey(twofactor_pb2.RemoveWebAuthnKeyRequest(
        session_token=session, key_id=key.id))
    await auth.twofactor.RemoveTotp(twofactor_pb2.RemoveTotpRequest(session_token=session))
    messages = await wait_for_mail(mailbox, "heidi@example.org", 6)
    assert sorted(m["Subject"] for m in messages) == sorted([
        "A second factor was added to your account", "Recovery codes for your account",
        "A second factor was added to your account", "A security key on your account was renamed",
        "A second factor was removed from your account", "A second factor was removed from your account"])
    bodies = [m.get_content() for m in messages]
    assert sum("'Blue key'" in b for b in bodies) == 2  # renamed to it, then removed
    assert sum("a password alone now logs in" in b for b in bodies) == 1


async def test_user_log_never_holds_a_secret(auth):
    align_clock(auth)
    session = await make_user(auth, "ivan")
    seed, codes = await enrol_totp(auth, session)
    pending = await pending_login(auth, "ivan")
    await complete(auth, pending.pending_login_token, recovery_code=codes[0])
    for event in await events(auth, username="ivan"):
        blob = event.SerializeToString()
        assert seed.encode() not in blob and not any(c.encode() in blob for c in codes)
        assert pending.pending_login_token.encode() not in blob


async def test_stale_rows_do_not_pile_up(auth):
    align_clock(auth)
    session = await make_user(auth, "judy")
    await enrol_totp(auth, session)
    for _ in range(3):
        await pending_login(auth, "judy")
        auth.clock.advance(301)
    await pending_login(auth, "judy")
    async with auth.running.app.db() as s:
        assert await s.scalar(select(func.count()).select_from(PendingLogin)) == 1
