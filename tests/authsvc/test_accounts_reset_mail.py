"""Password-reset requests: the same work on the request path for any name (the mail and its link
are made after the answer), and reset mails on a budget of their own, so that anyone's requests
neither block the owner's verification mail nor, from one address, the owner's own reset."""

from __future__ import annotations

import asyncio
import re

import grpc
import pytest
from sqlalchemy import event

from gatehouse.auth.v1 import accounts_pb2
from tests.authsvc.accounts_support import client, events, link_token, login, register, rpc_error, wait_for_mail


@pytest.fixture
def auth_overrides(smtp_server):
    return {"smtp_url": smtp_server[0]}


@pytest.fixture
def mailbox(smtp_server):
    return smtp_server[1]


async def request_reset(auth, name: str, ip: str = "192.0.2.10"):
    return await auth.accounts.RequestPasswordReset(accounts_pb2.RequestPasswordResetRequest(
        username_or_email=name, client=client(ip)))


def resets(mailbox, address: str) -> list:
    return [m for m in mailbox.to(address) if "reset" in m["Subject"].lower()]


async def test_a_reset_request_does_the_same_work_before_answering_for_any_name(auth, mailbox):
    await register(auth, "alice")
    app = auth.running.app
    statements: list[tuple[object, str]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append((asyncio.current_task(), re.sub(r"\s+", " ", statement)))

    event.listen(app.engine.sync_engine, "before_cursor_execute", record)
    traces = {}
    try:
        for name in ("alice", "nobody", "alice@example.org", "nobody@example.org"):
            await app.accounts.background.idle()
            statements.clear()
            await request_reset(auth, name)
            # The statements the answering task ran (the first is its own: nothing else runs now).
            answering = statements[0][0]
            traces[name] = [statement for task, statement in statements if task is answering]
    finally:
        event.remove(app.engine.sync_engine, "before_cursor_execute", record)
    assert traces["alice"] == traces["nobody"] == traces["alice@example.org"] == traces["nobody@example.org"]
    assert any("INSERT INTO rate_limit_hits" in st for st in traces["alice"])  # the client IP's count
    assert not any("one_time_tokens" in st or "outbox" in st for st in traces["alice"])
    # After the answer: the link by mail, and its audit event committed before it was sent.
    await wait_for_mail(mailbox, "alice@example.org", count=3)  # verification + two resets
    assert len(resets(mailbox, "alice@example.org")) == 2
    assert len(await events(auth, "account:password:reset:request")) == 2


async def test_anonymous_resets_do_not_use_up_the_owners_mail(auth, mailbox):
    await register(auth, "alice")
    session = (await login(auth, "alice")).session_token
    # Someone asks for resets of alice's account, over and over, from one address.
    for _ in range(auth.settings.reset_requests_per_ip):
        await request_reset(auth, "alice", ip="203.0.113.66")
    await auth.running.app.accounts.background.idle()
    assert len(resets(mailbox, "alice@example.org")) == auth.settings.reset_mails_per_user_ip
    # Alice still gets her verification link (her own budget is untouched)...
    await auth.accounts.ResendVerification(accounts_pb2.ResendVerificationRequest(session_token=session))
    verifications = [m for m in await wait_for_mail(mailbox, "alice@example.org",
                                                    count=2 + auth.settings.reset_mails_per_user_ip)
                     if "verify" in m["Subject"].lower()]
    assert len(verifications) == 2  # at registration, and now
    # ...and her own reset from her own address.
    await request_reset(auth, "alice", ip="192.0.2.77")
    await auth.running.app.accounts.background.idle()
    assert len(resets(mailbox, "alice@example.org")) == auth.settings.reset_mails_per_user_ip + 1
    # The anonymous requests stay limited per address, for every name alike.
    err = await rpc_error(request_reset(auth, "nobody", ip="203.0.113.66"))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_parallel_reset_requests_stay_within_the_budget(auth, mailbox):
    await register(auth, "alice")
    await asyncio.gather(*(request_reset(auth, "alice", ip=f"198.51.100.{i}") for i in range(30)))
    await auth.running.app.accounts.background.idle()
    assert len(resets(mailbox, "alice@example.org")) == auth.settings.reset_mails_per_user
    assert len(await events(auth, "account:password:reset:request")) == auth.settings.reset_mails_per_user


async def test_a_completed_reset_lets_the_owner_in_after_an_attack(auth, mailbox):
    """Guesses used up alice's login budget (her wait doubling); reading the reset mail and setting
    a new password proves she is the owner, so she can log in at once. The attacker's next guess
    is counted again from an empty budget, still per window."""
    await register(auth, "alice")
    guesses = [auth.accounts.Login(accounts_pb2.LoginRequest(username="alice", password="a wrong guess",
                                                             client=client(f"198.51.100.{i}")))
               for i in range(auth.settings.login_failures_per_user + 5)]
    await asyncio.gather(*(rpc_error(g) for g in guesses))
    assert (await rpc_error(login(auth, "alice", ip="192.0.2.77"))).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    await request_reset(auth, "alice", ip="192.0.2.77")
    (mail,) = [m for m in await wait_for_mail(mailbox, "alice@example.org", count=2) if "reset" in m["Subject"].lower()]
    await auth.accounts.ResetPassword(accounts_pb2.ResetPasswordRequest(
        token=link_token(mail, "/account/reset-password"), new_password="a brand new passphrase 42",
        client=client("192.0.2.77")))
    reply = await login(auth, "alice", password="a brand new passphrase 42", ip="192.0.2.77")
    assert reply.session_token
