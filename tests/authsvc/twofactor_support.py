"""Helpers for the two-factor tests: verified users, enrolment over gRPC, codes at the fake
clock's time, pending logins, and the events in the outbox table."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import types
import urllib.parse

import grpc
import pyotp
import pytest
from sqlalchemy import select

from authsvc.db import outbox
from gatehouse.auth.v1 import accounts_pb2, admin_pb2, common_pb2, twofactor_pb2
from gatehouse.events.v1 import event_pb2

from tests import eventkeys

PASSWORD = "correct horse battery staple"


def client(ip: str = "192.0.2.10", ua: str = "pytest-2fa/1") -> common_pb2.ClientInfo:
    return common_pb2.ClientInfo(ip_address=ip, user_agent=ua)


async def rpc_error(awaitable) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await awaitable
    return err.value


def align_clock(auth, into_step: float = 10.0) -> None:
    """Put the fake clock `into_step` seconds into a 30-second TOTP step (not on an edge)."""
    now = auth.clock.now().timestamp()
    auth.clock.set(dt.datetime.fromtimestamp((now // 30) * 30 + into_step, dt.timezone.utc))


async def make_user(auth, username: str = "alice", *, verified: bool = True, ip: str = "192.0.2.10") -> str:
    """An account with a verified primary email (by the operator), logged in: its session token."""
    await auth.admin.CreateUser(admin_pb2.AdminCreateUserRequest(
        username=username, email=f"{username}@example.org", password=PASSWORD, email_verified=verified))
    reply = await password_login(auth, username, ip=ip)
    assert reply.session_token and not reply.second_factor_required
    return reply.session_token


async def password_login(auth, username: str, password: str = PASSWORD, *, ip: str = "192.0.2.10"):
    return await auth.accounts.Login(accounts_pb2.LoginRequest(username=username, password=password,
                                                               client=client(ip)))


async def pending_login(auth, username: str, *, ip: str = "192.0.2.10") -> accounts_pb2.LoginResponse:
    reply = await password_login(auth, username, ip=ip)
    assert reply.second_factor_required and reply.pending_login_token and not reply.session_token
    return reply


def seed_of(uri: str) -> str:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)["secret"][0]


def code(auth, seed: str, offset_steps: int = 0) -> str:
    """What the authenticator app shows at the fake clock's time, `offset_steps` steps away."""
    return pyotp.TOTP(seed).at(int(auth.clock.now().timestamp()) + 30 * offset_steps)


async def enrol_totp(auth, session: str) -> tuple[str, list[str]]:
    """Set up and confirm an authenticator app: (seed, recovery codes returned)."""
    setup = await auth.twofactor.BeginTotpSetup(twofactor_pb2.BeginTotpSetupRequest(
        session_token=session, client=client()))
    seed = seed_of(setup.provisioning_uri)
    done = await auth.twofactor.ConfirmTotpSetup(twofactor_pb2.ConfirmTotpSetupRequest(
        session_token=session, code=code(auth, seed), client=client()))
    return seed, list(done.recovery_codes)


async def enrol_key(auth, session: str, key, label: str = "my key"):
    """Register a SoftAuthenticator: the CompleteWebAuthnRegistrationResponse."""
    begin = await auth.twofactor.BeginWebAuthnRegistration(twofactor_pb2.BeginWebAuthnRegistrationRequest(
        session_token=session))
    return await auth.twofactor.CompleteWebAuthnRegistration(twofactor_pb2.CompleteWebAuthnRegistrationRequest(
        session_token=session, label=label, credential_json=key.create(begin.options_json), client=client()))


async def complete(auth, pending_token: str, *, ip: str = "192.0.2.10", **proof):
    return await auth.twofactor.CompleteLogin(twofactor_pb2.CompleteLoginRequest(
        pending_login_token=pending_token, client=client(ip), **proof))


async def key_login(auth, username: str, key, **bend):
    """Password, then the security key: the CompleteLoginResponse."""
    pending = await pending_login(auth, username)
    begin = await auth.twofactor.BeginWebAuthnLogin(twofactor_pb2.BeginWebAuthnLoginRequest(
        pending_login_token=pending.pending_login_token))
    return await complete(auth, pending.pending_login_token, webauthn_assertion_json=key.get(begin.options_json, **bend))


async def events(auth, *, username: str | None = None, prefix: str = "") -> list[event_pb2.Event]:
    """Events in the auth service's outbox table, oldest first: decoded gatehouse.events.v1.Event."""
    async with auth.running.app.db() as s:
        rows = (await s.execute(select(outbox.c.tag, outbox.c.payload).order_by(outbox.c.id))).all()
    found = []
    for tag, payload in rows:
        event = event_pb2.Event.FromString(eventkeys.VERIFIER.open(payload).event)  # sealed by authsvc
        assert event.tag == tag
        if username is not None and event.subject_username != username:
            continue
        if event.tag.startswith(prefix):
            found.append(event)
    return found


async def tags(auth, username: str, prefix: str = "") -> list[str]:
    return [e.tag for e in await events(auth, username=username, prefix=prefix)]


async def wait_for_mail(mailbox, address: str, count: int, timeout: float = 5.0) -> list:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(mailbox.to(address)) < count:
        if loop.time() > deadline:
            raise AssertionError(f"expected {count} message(s) to {address}, got {len(mailbox.to(address))}")
        await asyncio.sleep(0.02)
    return mailbox.to(address)


@contextlib.asynccontextmanager
async def serve(database_url: str, clock, base=None, **overrides):
    """An auth service on `database_url` with these settings (keys shared with `base`, so a test
    can restart the service on the same database with other settings). Yields a harness with
    the same stubs as the `auth` fixture."""
    from authsvc.server import create_server
    from gatehouse.auth.v1 import accounts_pb2_grpc, admin_pb2_grpc, tokens_pb2_grpc, twofactor_pb2_grpc
    from gatehouse.infra.grpcserver import open_channel
    from tests.authsvc.conftest import auth_settings

    shared = {}
    if base is not None:
        shared = dict(gateway_key=base.gateway_key, operator_key=base.operator_key, token_secrets=base.token_secrets,
                      totp_keys=base.totp_keys)
    settings = auth_settings(database_url, **{**shared, **overrides})
    running = await create_server(settings, clock=clock, migrate_first=True)
    gateway = open_channel(f"127.0.0.1:{running.port}", settings.gateway_key)
    operator = open_channel(f"127.0.0.1:{running.port}", settings.operator_key)
    harness = types.SimpleNamespace(
        clock=clock, running=running, settings=settings,
        accounts=accounts_pb2_grpc.AccountServiceStub(gateway), tokens=tokens_pb2_grpc.TokenServiceStub(gateway),
        twofactor=twofactor_pb2_grpc.TwoFactorServiceStub(gateway), admin=admin_pb2_grpc.AdminServiceStub(operator))
    try:
        yield harness
    finally:
        await gateway.close()
        await operator.close()
        await running.stop(grace=0)
