"""New-device confirmation (authsvc/accounts/newdevice.py): a login from a browser and a network
never seen for the account is held until the mailed link is followed in the browser that started
it; WebAuthn logins and known browsers or networks pass; the link works once, briefly."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from sqlalchemy import func, select

from authsvc.accounts.models import HeldLogin
from gatehouse.auth.v1 import accounts_pb2, twofactor_pb2
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
    make_user,
    password_login,
    pending_login,
    rpc_error,
    tags,
)

HOME, AWAY = "192.0.2.10", "203.0.113.77"


@pytest.fixture
def mailbox(smtp_server):
    return smtp_server[1]


@pytest.fixture
def auth_overrides(smtp_server):
    return {"smtp_url": smtp_server[0], "new_device_confirmation": True}


def confirm(auth, link: str, browser: str, ip: str = AWAY):
    return auth.accounts.ConfirmLogin(accounts_pb2.ConfirmLoginRequest(link_token=link, browser_token=browser,
                                                                       client=client(ip)))


async def totp_user(auth, username: str) -> str:
    """A user with an authenticator app whose first login (from HOME) made HOME known: the seed."""
    align_clock(auth)
    session = await make_user(auth, username, ip=HOME)
    seed, _ = await enrol_totp(auth, session)
    return seed


async def held_totp_login(auth, username: str, seed: str, *, device_token: str = "") -> twofactor_pb2.CompleteLoginResponse:
    pending = await pending_login(auth, username, ip=AWAY)
    auth.clock.advance(30)  # a fresh TOTP step
    return await complete(auth, pending.pending_login_token, ip=AWAY, totp_code=code(auth, seed),
                          device_token=device_token)


async def test_totp_login_from_a_new_browser_and_network_is_held_until_the_link_is_followed(auth, mailbox):
    seed = await totp_user(auth, "alice")
    held = await held_totp_login(auth, "alice", seed)
    assert not held.session_token and held.confirmation_browser_token and held.method == "totp"
    link = await mailbox.token("alice@example.org", "new device")
    mail = next(m for m in mailbox.to("alice@example.org") if "new device" in m["Subject"])
    body = mail.get_content()
    assert AWAY in body and held.confirmation_browser_token not in body  # the link is the only secret
    assert (await tags(auth, "alice", "account:login:held")) == ["account:login:held"]
    assert [dict(e.details) for e in await events(auth, username="alice", prefix="account:login:held")] == [
        {"method": "totp", "reason": "new_device"}]

    # Another browser (no browser token, or someone else's) is refused, and the link stays usable.
    other = await rpc_error(confirm(auth, link, "not-the-browser"))
    assert other.code() == grpc.StatusCode.INVALID_ARGUMENT and "browser where you logged in" in other.details()
    done = await confirm(auth, link, held.confirmation_browser_token)
    assert done.session_token and done.user.username == "alice"
    successes = await events(auth, username="alice", prefix="account:login:success")
    assert [e.details["method"] for e in successes][-1] == "totp"
    assert (await tags(auth, "alice", "account:login:confirmed")) == ["account:login:confirmed"]
    again = await rpc_error(confirm(auth, link, held.confirmation_browser_token))
    assert again.code() == grpc.StatusCode.INVALID_ARGUMENT and "already used" in again.details()

    # That network is known now: the next login from it is not held.
    assert (await held_totp_login(auth, "alice", seed)).session_token


async def test_a_hundred_parallel_follows_confirm_once(auth, mailbox):
    seed = await totp_user(auth, "bob")
    held = await held_totp_login(auth, "bob", seed)
    link = await mailbox.token("bob@example.org", "new device")
    results = await asyncio.gather(*(confirm(auth, link, held.confirmation_browser_token) for _ in range(100)),
                                   return_exceptions=True)
    sessions = [r for r in results if isinstance(r, accounts_pb2.LoginResponse)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(sessions) == 1 and sessions[0].session_token
    assert len(refused) == 99 and {r.code() for r in refused} == {grpc.StatusCode.INVALID_ARGUMENT}
    assert (await tags(auth, "bob", "account:login:confirmed")) == ["account:login:confirmed"]


async def test_the_link_expires(auth, mailbox):
    seed = await totp_user(auth, "carol")
    held = await held_totp_login(auth, "carol", seed)
    link = await mailbox.token("carol@example.org", "new device")
    auth.clock.advance(15 * 60 + 1)
    expired = await rpc_error(confirm(auth, link, held.confirmation_browser_token))
    assert expired.code() == grpc.StatusCode.INVALID_ARGUMENT and "expired" in expired.details()
    assert not await tags(auth, "carol", "account:login:confirmed")


async def test_a_known_browser_passes_from_a_new_network(auth, mailbox):
    seed = await totp_user(auth, "dave")
    first = await pending_login(auth, "dave", ip=HOME)
    auth.clock.advance(30)
    done = await complete(auth, first.pending_login_token, ip=HOME, totp_code=code(auth, seed),
                          device_token=first.device_token)
    assert done.session_token  # from HOME: this browser's device is known from now on
    pending = await auth.accounts.Login(accounts_pb2.LoginRequest(  # the browser sends its device cookie
        username="dave", password=PASSWORD, client=client(AWAY), device_token=first.device_token))
    auth.clock.advance(30)
    away = await complete(auth, pending.pending_login_token, ip=AWAY, totp_code=code(auth, seed),
                          device_token=pending.device_token)
    assert away.session_token and not away.confirmation_browser_token
    assert not await tags(auth, "dave", "account:login:held")


async def test_a_security_key_login_is_never_held(auth, mailbox):
    align_clock(auth)
    session = await make_user(auth, "erin", ip=HOME)
    key = SoftAuthenticator()
    await enrol_key(auth, session, key)
    pending = await pending_login(auth, "erin", ip=AWAY)
    begin = await auth.twofactor.BeginWebAuthnLogin(twofactor_pb2.BeginWebAuthnLoginRequest(
        pending_login_token=pending.pending_login_token))
    done = await complete(auth, pending.pending_login_token, ip=AWAY,
                          webauthn_assertion_json=key.get(begin.options_json))
    assert done.session_token and not done.confirmation_browser_token
    assert not await tags(auth, "erin", "account:login:held")


async def test_a_password_only_login_from_a_new_place_is_held_too(auth, mailbox):
    await make_user(auth, "frank", ip=HOME)
    held = await password_login(auth, "frank", ip="2001:db8::5")
    assert not held.session_token and held.confirmation_browser_token
    link = await mailbox.token("frank@example.org", "new device")
    done = await confirm(auth, link, held.confirmation_browser_token, ip="2001:db8::5")
    assert done.session_token
    assert (await password_login(auth, "frank", ip="2001:db8::99")).session_token  # the same /64


async def test_a_recovery_code_login_is_held_and_a_new_hold_clears_expired_ones(auth, mailbox):
    align_clock(auth)
    session = await make_user(auth, "gina", ip=HOME)
    _, codes = await enrol_totp(auth, session)
    first = await complete(auth, (await pending_login(auth, "gina", ip=AWAY)).pending_login_token, ip=AWAY,
                           recovery_code=codes[0])
    assert first.confirmation_browser_token and not first.session_token
    auth.clock.advance(16 * 60)
    second = await complete(auth, (await pending_login(auth, "gina", ip=AWAY)).pending_login_token, ip=AWAY,
                            recovery_code=codes[1])
    assert second.confirmation_browser_token
    async with auth.running.app.db() as s:
        assert await s.scalar(select(func.count()).select_from(HeldLogin)) == 1
    assert [dict(e.details) for e in await events(auth, username="gina", prefix="account:login:held")] == [
        {"method": "recovery_code", "reason": "new_device"}] * 2
