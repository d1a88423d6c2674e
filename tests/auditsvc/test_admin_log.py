"""AuditService.ListAllEvents: the full log for an admin's browser session, decided by a real authsvc
on a real port (auditsvc asks it; the gateway credential alone is never enough), failing closed."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import secrets

import grpc
import pytest

from auditsvc.server import create_server
from authsvc.server import create_server as create_auth
from gatehouse.audit.v1 import audit_pb2, audit_pb2_grpc
from gatehouse.auth.v1 import accounts_pb2, accounts_pb2_grpc, admin_pb2, admin_pb2_grpc
from gatehouse.infra.clock import FakeClock
from gatehouse.infra.grpcserver import open_channel
from gatehouse.infra.outbox import ActorRef
from gatehouse.infra.redis_embed import free_port
from tests.auditsvc.conftest import NOW, audit_settings, build_event, ingest_events
from tests.authsvc.conftest import auth_settings

PASSWORD = "correct horse battery staple"


@dataclasses.dataclass
class AuthService:
    running: object
    settings: object
    clock: FakeClock
    admin: admin_pb2_grpc.AdminServiceStub
    accounts: accounts_pb2_grpc.AccountServiceStub
    stopped: bool = False

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.running.port}"

    async def session(self, username: str, *, is_admin: bool) -> str:
        """A new account (admin or not), logged in: its session token."""
        await self.admin.CreateUser(admin_pb2.AdminCreateUserRequest(
            username=username, email=f"{username}@example.org", password=PASSWORD, email_verified=True,
            is_admin=is_admin))
        reply = await self.accounts.Login(accounts_pb2.LoginRequest(username=username, password=PASSWORD))
        assert reply.session_token
        return reply.session_token

    async def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            await self.running.stop(grace=0)


@pytest.fixture
async def authsvc(make_database_url):
    clock = FakeClock()
    clock.set(dt.datetime.now(dt.timezone.utc))
    settings = auth_settings(make_database_url("authsvc"))
    running = await create_auth(settings, clock=clock, migrate_first=True)
    operator = open_channel(f"127.0.0.1:{running.port}", settings.operator_key)
    gateway = open_channel(f"127.0.0.1:{running.port}", settings.gateway_key)
    service = AuthService(running, settings, clock, admin_pb2_grpc.AdminServiceStub(operator),
                          accounts_pb2_grpc.AccountServiceStub(gateway))
    yield service
    await operator.close()
    await gateway.close()
    await service.stop()


@pytest.fixture
def audit_overrides(authsvc):
    # auditsvc presents its narrow credential: authsvc lets it call ValidateSession only.
    return {"authsvc_target": authsvc.target, "authsvc_key": authsvc.settings.audit_key}


def all_events(session_token: str, **fields) -> audit_pb2.ListAllEventsRequest:
    return audit_pb2.ListAllEventsRequest(session_token=session_token, **fields)


async def refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value


@pytest.fixture
async def stored(audit):
    """Events of several users and projects, as the full log holds them."""
    alice = [build_event(at=NOW - dt.timedelta(minutes=i), user=("u-alice", "alice")) for i in range(6)]
    bob = [build_event("project:release:remove", at=NOW - dt.timedelta(minutes=30 + i), user=("u-bob", "bob"),
                       project=("p-1", "widgets"), ip="198.51.100.9") for i in range(3)]
    by_operator = build_event("account:disable", at=NOW - dt.timedelta(hours=2), actor=ActorRef.operator("ops"),
                              user=("u-carol", "carol"))
    await ingest_events(audit.log, alice + bob + [by_operator])
    return alice, bob, by_operator


async def test_an_admin_session_reads_everyones_events_with_the_admin_filters_and_paging(audit, authsvc, stored):
    alice, bob, by_operator = stored
    token = await authsvc.session("root", is_admin=True)
    reply = await audit.audit.ListAllEvents(all_events(token, page_size=500))
    assert [e.event_id for e in reply.events] == [e.event_id for e in alice + bob + [by_operator]]
    # The same query as the operators' ListEvents, filters and pages included.
    for flt in (audit_pb2.EventFilter(subject_username="BOB"), audit_pb2.EventFilter(tag_prefix="account:"),
                audit_pb2.EventFilter(ip_address="198.51.100.9", project_name="Widgets"),
                audit_pb2.EventFilter(tag="account:disable")):
        mine = await audit.audit.ListAllEvents(all_events(token, filter=flt, page_size=4))
        ops = await audit.admin.ListEvents(audit_pb2.AdminListEventsRequest(filter=flt, page_size=4))
        assert [e.event_id for e in mine.events] == [e.event_id for e in ops.events] and mine.events
    first = await audit.audit.ListAllEvents(all_events(token, page_size=4))
    second = await audit.audit.ListAllEvents(all_events(token, page_size=4, page_token=first.next_page_token))
    ids = [e.event_id for e in first.events] + [e.event_id for e in second.events]
    assert ids == [e.event_id for e in (alice + bob)[:8]]
    err = await refused(audit.audit.ListAllEvents(all_events(token, page_token="garbage")))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_session_of_a_user_who_is_not_an_admin_is_refused(audit, authsvc, stored):
    token = await authsvc.session("mallory", is_admin=False)
    err = await refused(audit.audit.ListAllEvents(all_events(token)))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "administrators" in err.details()
    # Admin rights taken away: the very next call is refused (nothing cached).
    admin = await authsvc.session("former", is_admin=True)
    assert (await audit.audit.ListAllEvents(all_events(admin))).events
    await authsvc.admin.SetAdmin(admin_pb2.AdminSetAdminRequest(username="former", is_admin=False))
    err = await refused(audit.audit.ListAllEvents(all_events(admin)))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_garbage_ended_and_expired_sessions_are_unauthenticated(audit, authsvc, stored):
    for bad in ("", "garbage", "x" * 600, secrets.token_urlsafe(32)):
        err = await refused(audit.audit.ListAllEvents(all_events(bad)))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED, bad
    ended = await authsvc.session("leaver", is_admin=True)
    await authsvc.accounts.Logout(accounts_pb2.LogoutRequest(session_token=ended))
    assert (await refused(audit.audit.ListAllEvents(all_events(ended)))).code() == grpc.StatusCode.UNAUTHENTICATED
    disabled = await authsvc.session("gone", is_admin=True)
    await authsvc.admin.SetUserActive(admin_pb2.AdminSetUserActiveRequest(username="gone", active=False))
    assert (await refused(audit.audit.ListAllEvents(all_events(disabled)))).code() == grpc.StatusCode.UNAUTHENTICATED
    expiring = await authsvc.session("sleepy", is_admin=True)
    assert (await audit.audit.ListAllEvents(all_events(expiring))).events
    authsvc.clock.advance(seconds=authsvc.settings.session_lifetime_seconds)
    err = await refused(audit.audit.ListAllEvents(all_events(expiring)))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED and "expired" in err.details()


async def test_the_call_still_needs_the_gateway_credential(audit, authsvc, stored):
    token = await authsvc.session("root", is_admin=True)
    stub, channel = audit.stub(None)
    try:
        err = await refused(stub.ListAllEvents(all_events(token)))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await channel.close()


async def test_authsvc_down_means_unavailable(audit, authsvc, stored):
    token = await authsvc.session("root", is_admin=True)
    assert (await audit.audit.ListAllEvents(all_events(token))).events
    await authsvc.stop()
    err = await refused(audit.audit.ListAllEvents(all_events(token)))
    assert err.code() == grpc.StatusCode.UNAVAILABLE and "account service" in err.details()


async def start_other_audit(audit_db_url, **overrides):
    settings = audit_settings(audit_db_url, **overrides)
    running = await create_server(settings)
    channel = open_channel(f"127.0.0.1:{running.port}", settings.gateway_key)
    return running, channel


async def test_a_silent_authsvc_a_refused_credential_or_none_configured_fail_closed(audit_db_url, authsvc):
    token = await authsvc.session("root", is_admin=True)

    async def silent(reader, writer):  # accepts the connection, never answers
        await asyncio.sleep(30)

    black_hole = await asyncio.start_server(silent, "127.0.0.1", 0)
    hole = f"127.0.0.1:{black_hole.sockets[0].getsockname()[1]}"
    cases = {
        "silent": dict(authsvc_target=hole, authsvc_key="k" * 20, authsvc_timeout=0.5),
        "nobody listening": dict(authsvc_target=f"127.0.0.1:{free_port()}", authsvc_key="k" * 20),
        "wrong credential": dict(authsvc_target=authsvc.target, authsvc_key="not-" + authsvc.settings.gateway_key),
        "not configured": {},
    }
    try:
        for name, overrides in cases.items():
            running, channel = await start_other_audit(audit_db_url, **overrides)
            try:
                started = asyncio.get_running_loop().time()
                err = await refused(audit_pb2_grpc.AuditServiceStub(channel).ListAllEvents(all_events(token)))
                assert err.code() == grpc.StatusCode.UNAVAILABLE, (name, err.code(), err.details())
                assert asyncio.get_running_loop().time() - started < 4, name
            finally:
                await channel.close()
                await running.stop(grace=0)
    finally:
        black_hole.close()

