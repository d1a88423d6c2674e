"""Password change and password reset by emailed link, end to end over gRPC and SMTP."""

from __future__ import annotations

import grpc
import pytest

from gatehouse.auth.v1 import accounts_pb2
from gatehouse.events.v1 import event_pb2
from tests.authsvc.accounts_support import (
    PASSWORD,
    client,
    events,
    link_token,
    login,
    register,
    rpc_error,
    wait_for_mail,
)

NEW = "a completely new passphrase"
PUBLIC = "https://index.example.test"


@pytest.fixture
def auth_overrides(smtp_server):
    return {"smtp_url": smtp_server[0], "public_url": PUBLIC}


@pytest.fixture
def mailbox(smtp_server):
    return smtp_server[1]


async def validate(auth, token):
    return await auth.accounts.ValidateSession(accounts_pb2.ValidateSessionRequest(session_token=token))


async def change(auth, session, old=PASSWORD, new=NEW):
    return await auth.accounts.ChangePassword(accounts_pb2.ChangePasswordRequest(
        session_token=session, old_password=old, new_password=new, client=client()))


async def request_reset(auth, login_name, ip="192.0.2.10"):
    return await auth.accounts.RequestPasswordReset(accounts_pb2.RequestPasswordResetRequest(
        username_or_email=login_name, client=client(ip)))


async def reset(auth, token, new=NEW):
    return await auth.accounts.ResetPassword(accounts_pb2.ResetPasswordRequest(
        token=token, new_password=new, client=client("192.0.2.11")))


async def reset_token(auth, mailbox, login_name="alice", address="alice@example.org", count=1):
    await request_reset(auth, login_name)
    messages = await wait_for_mail(mailbox, address, count=count)
    reset_mails = [m for m in messages if "reset" in m["Subject"].lower()]
    return link_token(reset_mails[-1], f"{PUBLIC}/account/reset-password")


# -- change ---------------------------------------------------------------------------------


async def test_change_password_needs_the_old_one_and_ends_other_sessions(auth):
    user = await register(auth, "alice")
    current = (await login(auth)).session_token
    other = (await login(auth, ua="other device")).session_token
    bob = await register(auth, "bob")
    bob_session = (await login(auth, "bob")).session_token

    err = await rpc_error(change(auth, current, old="wrong password"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    err = await rpc_error(change(auth, current, new="password1"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "too common" in err.details()
    await validate(auth, other)  # nothing changed yet

    auth.clock.advance(seconds=3600)
    await change(auth, current)
    assert (await validate(auth, current)).user.id == user.id
    # A fresh password entry: no re-authentication needed right after.
    accounts = auth.running.app.accounts
    assert not await accounts.reauth_required(await accounts.authenticate_session(current))
    err = await rpc_error(validate(auth, other))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert (await validate(auth, bob_session)).user.id == bob.id  # other users untouched

    err = await rpc_error(login(auth, "alice", PASSWORD))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert (await login(auth, "alice", NEW)).session_token
    [event] = await events(auth, "account:password:change")
    assert event.subject_user_id == user.id and event.details["sessions_ended"] == "1"


# -- reset ----------------------------------------------------------------------------------


async def test_reset_end_to_end(auth, mailbox):
    user = await register(auth, "alice")
    sessions = [(await login(auth, ua=f"device {i}")).session_token for i in range(2)]
    token = await reset_token(auth, mailbox, count=2)  # the verification mail came first

    [requested] = await events(auth, "account:password:reset:request")
    assert requested.subject_user_id == user.id and requested.ip_address == "192.0.2.10"
    assert requested.actor.kind == event_pb2.Actor.ANONYMOUS

    reply = await reset(auth, token)
    assert reply.second_factor_required is False
    # A reset logs no one in and ends every session.
    for session in sessions:
        assert (await rpc_error(validate(auth, session))).code() == grpc.StatusCode.UNAUTHENTICATED
    [done] = await events(auth, "account:password:reset")
    assert done.subject_user_id == user.id and done.details["sessions_ended"] == "2"
    assert (await rpc_error(login(auth, "alice", PASSWORD))).code() == grpc.StatusCode.UNAUTHENTICATED
    assert (await login(auth, "alice", NEW)).session_token

    err = await rpc_error(reset(auth, token, new="yet another passphrase"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "already used" in err.details()
    assert (await login(auth, "alice", NEW)).session_token


async def test_reset_by_email_address_goes_to_that_verified_address(auth, mailbox):
    await register(auth, "alice")
    session = (await login(auth)).session_token
    await auth.accounts.AddEmail(accounts_pb2.AddEmailRequest(session_token=session, email="alt@example.org"))
    [verify_mail] = mailbox.to("alt@example.org")
    # Not verified yet: the reset goes to the primary address instead.
    await request_reset(auth, "ALT@example.org")
    await wait_for_mail(mailbox, "alice@example.org", count=2)
    await auth.accounts.VerifyEmail(accounts_pb2.VerifyEmailRequest(
        token=link_token(verify_mail, "/account/verify-email")))
    token = await reset_token(auth, mailbox, "alt@example.org", "alt@example.org", count=2)
    await reset(auth, token)
    assert (await login(auth, "alice", NEW)).session_token


async def test_reset_link_expires_within_the_hour(auth, mailbox):
    await register(auth, "alice")
    token = await reset_token(auth, mailbox, count=2)
    assert auth.settings.reset_token_lifetime_seconds <= 3600
    auth.clock.advance(seconds=auth.settings.reset_token_lifetime_seconds)
    err = await rpc_error(reset(auth, token))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "expired" in err.details()
    assert (await login(auth, "alice", PASSWORD)).session_token


async def test_reset_link_is_voided_by_a_password_change(auth, mailbox):
    await register(auth, "alice")
    session = (await login(auth)).session_token
    token = await reset_token(auth, mailbox, count=2)
    await change(auth, session)
    err = await rpc_error(reset(auth, token, new="the attacker's choice"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (await login(auth, "alice", NEW)).session_token


async def test_a_bad_new_password_does_not_burn_the_link(auth, mailbox):
    await register(auth, "alice")
    token = await reset_token(auth, mailbox, count=2)
    for bad in ("short", "password123", "x" * 4097):
        err = await rpc_error(reset(auth, token, new=bad))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    await reset(auth, token)
    assert (await login(auth, "alice", NEW)).session_token


async def test_an_older_link_dies_with_a_completed_reset(auth, mailbox):
    await register(auth, "alice")
    first = await reset_token(auth, mailbox, count=2)
    second = await reset_token(auth, mailbox, count=3)
    await reset(auth, second)
    err = await rpc_error(reset(auth, first, new="the attacker's choice"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_reset_request_answers_the_same_for_unknown_accounts(auth, mailbox):
    await register(auth, "alice")
    for name in ("nobody", "nobody@example.org", "alice", "alice@example.org"):
        assert await request_reset(auth, name) == accounts_pb2.RequestPasswordResetResponse()
    await wait_for_mail(mailbox, "alice@example.org", count=3)
    await auth.running.app.accounts.close()  # let background mail finish
    assert {m["To"] for m in mailbox.messages} == {"alice@example.org"}
    assert len(await events(auth, "account:password:reset:request")) == 2
    err = await rpc_error(request_reset(auth, ""))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_reset_requests_are_limited(auth, mailbox):
    await register(auth, "alice")
    await register(auth, "bob")
    # Per account, silently (same answer): the reset mails' own budget caps what is sent...
    for i in range(auth.settings.reset_mails_per_user + 2):
        await request_reset(auth, "alice", ip=f"198.51.100.{i}")
    # ...and per account from one address, a smaller one.
    for i in range(auth.settings.reset_mails_per_user_ip + 2):
        await request_reset(auth, "bob", ip="198.51.100.99")
    await auth.running.app.accounts.close()
    resets = [m for m in mailbox.to("alice@example.org") if "reset" in m["Subject"].lower()]
    assert len(resets) == auth.settings.reset_mails_per_user
    resets = [m for m in mailbox.to("bob@example.org") if "reset" in m["Subject"].lower()]
    assert len(resets) == auth.settings.reset_mails_per_user_ip
    # Per client IP, for everyone alike.
    for i in range(auth.settings.reset_requests_per_ip):
        await request_reset(auth, f"nobody{i}", ip="203.0.113.77")
    err = await rpc_error(request_reset(auth, "alice", ip="203.0.113.77"))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "Try again in" in err.details()


async def test_reset_is_refused_for_a_disabled_account(auth, mailbox):
    await register(auth, "alice")
    token = await reset_token(auth, mailbox, count=2)
    from gatehouse.infra.outbox import ActorRef

    await auth.running.app.accounts.set_active("alice", False, actor=ActorRef.operator("ops"))
    err = await rpc_error(reset(auth, token))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    # No new links go out to a disabled account either.
    await request_reset(auth, "alice")
    await auth.running.app.accounts.close()
    assert len(mailbox.to("alice@example.org")) == 2


class _TotpEnrolled:
    """Stands in for the two-factor component (a later issue) at the seam the accounts offer."""

    async def methods(self, s, user):
        return ("totp",)

    async def start_pending_login(self, s, user, origin):
        return "pending"


async def test_a_reset_never_bypasses_the_second_factor(auth, mailbox, monkeypatch):
    await register(auth, "alice")
    monkeypatch.setattr(auth.running.app.accounts, "second_factor", _TotpEnrolled())
    token = await reset_token(auth, mailbox, count=2)
    reply = await reset(auth, token)
    assert reply.second_factor_required
    after = await login(auth, "alice", NEW)
    assert after.second_factor_required and not after.session_token
