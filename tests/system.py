"""The whole Gatehouse system for end-to-end tests, usable from any test directory.

`start_system(...)` (an async context manager) brings up, on real ports: authsvc with its
in-process outbox relay, auditsvc with its stream consumer, and — when `uploadgw` is importable —
the upload gateway with a relay for its outbox, all publishing to one Redis stream of their own on
a real redis-server, plus a real SMTP listener for the account mail. Every part shares one
`ShiftedClock` (the real time plus an offset that tests move forward for TOTP steps).

As a pytest fixture, shared per module (tests use distinct users and projects):

    from tests.system import system  # noqa: F401  (the module-scoped fixture)
    pytestmark = pytest.mark.asyncio(loop_scope="module")

A module may set `SYSTEM_OPTIONS = {...}` (keyword arguments of `start_system`).

Log checks: `wait_for_user_event` / `wait_for_project_event` / `wait_for_event` poll the audit
service until an event appears; `settle()` waits until everything committed so far is stored, so
that a check that an event is NOT in some log means something.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import importlib.util
import os
import secrets
import uuid
from collections.abc import Callable

import grpc
import pyotp
import pytest_asyncio
from sqlalchemy import func, select

from gatehouse.audit.v1 import audit_pb2, audit_pb2_grpc
from gatehouse.auth.v1 import (
    accounts_pb2,
    accounts_pb2_grpc,
    admin_pb2,
    admin_pb2_grpc,
    common_pb2,
    projects_pb2_grpc,
    tokens_pb2,
    tokens_pb2_grpc,
    twofactor_pb2_grpc,
)
from gatehouse.infra.grpcserver import open_channel
from gatehouse.infra.redis_embed import free_port
from gatehouse.infra.relay import OutboxRelay, connect_redis
from tests import eventkeys
from tests.system_parts import PASSWORD, Databases, Mailbox, Person, ShiftedClock, start_smtp

UA = "gatehouse-e2e/1"


def client(ip: str = "192.0.2.1", ua: str = UA) -> common_pb2.ClientInfo:
    return common_pb2.ClientInfo(ip_address=ip, user_agent=ua)


def gateway_available() -> bool:
    return importlib.util.find_spec("uploadgw") is not None and \
        hasattr(importlib.import_module("uploadgw.app"), "create_app")


@dataclasses.dataclass
class System:
    clock: ShiftedClock
    mailbox: Mailbox
    redis_url: str
    stream: str
    auth: object                  # authsvc.server.RunningServer (its relay: auth.relay)
    audit: object                 # auditsvc.server.RunningServer (its consumer: audit.consumer)
    gateway: object | None        # uploadgw.server.RunningGateway, or None
    relays: list[OutboxRelay]
    auth_settings: object
    audit_settings: object
    gateway_settings: object | None
    public_url: str
    channels: dict[str, grpc.aio.Channel]
    _producers: list[tuple[object, object]]  # (session factory, outbox table)

    # -- addresses and stubs -----------------------------------------------------------------------
    @property
    def auth_target(self) -> str:
        return f"127.0.0.1:{self.auth.port}"

    @property
    def audit_target(self) -> str:
        return f"127.0.0.1:{self.audit.port}"

    @property
    def gateway_url(self) -> str:
        return self.gateway.url if self.gateway is not None else ""

    @property
    def accounts(self):
        return accounts_pb2_grpc.AccountServiceStub(self.channels["auth"])

    @property
    def projects(self):
        return projects_pb2_grpc.ProjectServiceStub(self.channels["auth"])

    @property
    def tokens(self):
        return tokens_pb2_grpc.TokenServiceStub(self.channels["auth"])

    @property
    def twofactor(self):
        return twofactor_pb2_grpc.TwoFactorServiceStub(self.channels["auth"])

    @property
    def admin(self):
        return admin_pb2_grpc.AdminServiceStub(self.channels["auth_operator"])

    @property
    def audit_log(self):
        """AuditService with the gateway's credential (user and project logs)."""
        return audit_pb2_grpc.AuditServiceStub(self.channels["audit"])

    @property
    def audit_admin(self):
        return audit_pb2_grpc.AuditAdminServiceStub(self.channels["audit_operator"])

    def cli_env(self, **extra: str) -> dict[str, str]:
        """The environment for the `gatehouse` CLI pointed at this system (operator credentials)."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AUTHSVC_", "AUDITSVC_", "UPLOADGW_", "GATEHOUSE_"))}
        env.update(GATEHOUSE_AUTHSVC_TARGET=self.auth_target, AUTHSVC_OPERATOR_KEY=self.auth_settings.operator_key,
                   GATEHOUSE_AUDITSVC_TARGET=self.audit_target,
                   AUDITSVC_OPERATOR_KEY=self.audit_settings.operator_key, PYTHONUNBUFFERED="1")
        env.update(extra)
        return env

    # -- people, projects, tokens (through the real APIs) ---------------------------------------------
    async def person(self, prefix: str = "u", *, verified: bool = True, password: str = PASSWORD) -> Person:
        """A new account created by the operator (email verified unless told otherwise)."""
        username = f"{prefix}{secrets.token_hex(4)}"
        email = f"{username}@example.org"
        reply = await self.admin.CreateUser(admin_pb2.AdminCreateUserRequest(
            username=username, email=email, password=password, email_verified=verified))
        return Person(username=username, user_id=reply.user.id, email=email, password=password)

    async def login(self, person: Person, *, ip: str = "192.0.2.1",
                    password: str | None = None) -> accounts_pb2.LoginResponse:
        return await self.accounts.Login(accounts_pb2.LoginRequest(
            username=person.username, password=person.password if password is None else password,
            client=client(ip)))

    async def failed_login(self, person: Person, *, ip: str = "192.0.2.1") -> grpc.aio.AioRpcError:
        """A login with a wrong password: the refusal (UNAUTHENTICATED)."""
        try:
            await self.login(person, ip=ip, password="not " + person.password)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAUTHENTICATED, exc
            return exc
        raise AssertionError("a wrong password was accepted")

    async def session(self, person: Person, *, ip: str = "192.0.2.1") -> str:
        """Log in with the password (no second factor): the session token."""
        reply = await self.login(person, ip=ip)
        assert reply.session_token, f"{person.username} needs a second factor"
        return reply.session_token

    async def project(self, owner: Person, name: str | None = None, *, maintainers=()) -> tuple[str, str]:
        """A new project owned by `owner` (operator AddRole with create_project): (name, id)."""
        name = name or f"proj-{secrets.token_hex(4)}"
        reply = await self.admin.AddRole(admin_pb2.AdminAddRoleRequest(
            project_name=name, username=owner.username, role=common_pb2.ROLE_OWNER, create_project=True))
        for person in maintainers:
            await self.admin.AddRole(admin_pb2.AdminAddRoleRequest(
                project_name=name, username=person.username, role=common_pb2.ROLE_MAINTAINER))
        return name, reply.project.id

    async def create_token(self, session: str, description: str | None = None, projects=(),
                           ip: str = "192.0.2.1") -> tokens_pb2.CreateTokenResponse:
        """The user's own token (TokenService.CreateToken, as the token page does it)."""
        return await self.tokens.CreateToken(tokens_pb2.CreateTokenRequest(
            session_token=session, description=description or f"t-{secrets.token_hex(3)}",
            scope=common_pb2.TokenScope(all_projects=not projects, project_names=list(projects)),
            client=client(ip)))

    def totp(self, seed: str, offset_steps: int = 0) -> str:
        return pyotp.TOTP(seed).at(int(self.clock.now().timestamp()) + 30 * offset_steps)

    # -- the logs ------------------------------------------------------------------------------------
    async def user_events(self, user_id: str, **window) -> list[audit_pb2.AuditEvent]:
        """The user's whole log (every page), newest first."""
        return await self._pages(self.audit_log.ListUserEvents,
                                 lambda **p: audit_pb2.ListUserEventsRequest(user_id=user_id, **p), window)

    async def project_events(self, project_id: str, **window) -> list[audit_pb2.AuditEvent]:
        return await self._pages(self.audit_log.ListProjectEvents,
                                 lambda **p: audit_pb2.ListProjectEventsRequest(project_id=project_id, **p), window)

    async def events(self, **filters) -> list[audit_pb2.AuditEvent]:
        """The full (operator) log with these EventFilter fields."""
        flt = audit_pb2.EventFilter(**filters)
        return await self._pages(self.audit_admin.ListEvents,
                                 lambda **p: audit_pb2.AdminListEventsRequest(filter=flt, **p), {})

    @staticmethod
    async def _pages(call, make, window) -> list:
        found, token = [], ""
        while True:
            request = make(page_size=500, page_token=token)
            for field, value in window.items():
                getattr(request, field).FromDatetime(value.astimezone(dt.timezone.utc).replace(tzinfo=None))
            reply = await call(request)
            found.extend(reply.events)
            token = reply.next_page_token
            if not token:
                return found

    async def _wait(self, fetch: Callable, tag: str, where: Callable | None, count: int,
                    timeout: float, what: str) -> list[audit_pb2.AuditEvent]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for relay in self.relays:
                relay.notify()
            found = [e for e in await fetch() if e.tag == tag and (where is None or where(e))]
            if len(found) >= count:
                return found
            if asyncio.get_running_loop().time() > deadline:
                tags = [e.tag for e in await fetch()]
                raise AssertionError(f"{count} {tag!r} event(s) expected in {what} within {timeout}s; "
                                     f"found {len(found)}; the log has {tags}")
            await asyncio.sleep(0.05)

    async def wait_for_user_event(self, user_id: str, tag: str, *, where: Callable | None = None,
                                  count: int = 1, timeout: float = 15.0) -> list[audit_pb2.AuditEvent]:
        """Poll the user's log until `count` events with `tag` (matching `where`) are in it."""
        return await self._wait(lambda: self.user_events(user_id), tag, where, count, timeout,
                                f"the log of user {user_id}")

    async def wait_for_project_event(self, project_id: str, tag: str, *, where: Callable | None = None,
                                     count: int = 1, timeout: float = 15.0) -> list[audit_pb2.AuditEvent]:
        return await self._wait(lambda: self.project_events(project_id), tag, where, count, timeout,
                                f"the log of project {project_id}")

    async def wait_for_event(self, tag: str, *, where: Callable | None = None, count: int = 1,
                             timeout: float = 15.0, **filters) -> list[audit_pb2.AuditEvent]:
        return await self._wait(lambda: self.events(tag=tag, **filters), tag, where, count, timeout,
                                f"the full log {filters or ''}")

    async def settle(self, timeout: float = 15.0) -> None:
        """Wait until every event committed before this call is stored by the audit service: the
        producers' outboxes are published and the consumer group has read and acknowledged the
        stream up to its last entry."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for factory, table in self._producers:
            while True:
                for relay in self.relays:
                    relay.notify()
                async with factory() as session:
                    waiting = await session.scalar(
                        select(func.count()).select_from(table).where(table.c.published_at.is_(None)))
                if not waiting:
                    break
                if loop.time() > deadline:
                    raise AssertionError(f"{waiting} outbox rows still unpublished")
                await asyncio.sleep(0.02)
        redis = connect_redis(self.redis_url)
        try:
            if not await redis.exists(self.stream):
                return
            last = _entry_id((await redis.xinfo_stream(self.stream))["last-generated-id"])
            group = self.audit_settings.consumer_group
            while True:
                groups = {_text(g["name"]): g for g in await redis.xinfo_groups(self.stream)}
                state = groups.get(group)
                if state and state["pending"] == 0 and _entry_id(state["last-delivered-id"]) >= last:
                    return
                if loop.time() > deadline:
                    raise AssertionError(f"the audit consumer did not catch up: {state}")
                await asyncio.sleep(0.02)
        finally:
            await redis.aclose()


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry_id(value) -> tuple[int, int]:
    ms, _, seq = _text(value).partition("-")
    return int(ms), int(seq or 0)


def _find_relay(running) -> OutboxRelay | None:
    """The gateway's own outbox relay, if its app runs one."""
    candidates = list(vars(running).values())
    app = getattr(running, "app", None)
    if app is not None:
        candidates += [app[key] for key in app]
        gateway = getattr(running, "gateway", None)
        if gateway is not None:
            candidates += list(vars(gateway).values())
    return next((c for c in candidates if isinstance(c, OutboxRelay)), None)


@contextlib.asynccontextmanager
async def start_system(directory, redis_url: str, *, with_gateway: bool | None = None,
                       auth_options: dict | None = None, audit_options: dict | None = None,
                       gateway_options: dict | None = None):
    """Start the system under `directory` (databases, file store) on the Redis at `redis_url`."""
    from auditsvc.server import create_server as create_audit
    from auditsvc.settings import Settings as AuditSettings
    from authsvc.db import outbox as auth_outbox
    from authsvc.server import create_server as create_auth
    from authsvc.settings import Settings as AuthSettings

    with_gateway = gateway_available() if with_gateway is None else with_gateway
    clock = ShiftedClock()
    stream = f"gatehouse:e2e:{uuid.uuid4().hex[:10]}"
    http_port = free_port()
    public_url = f"http://localhost:{http_port}"
    databases = Databases(directory)
    mailbox = Mailbox()
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(databases.drop_all)
        smtp_url = start_smtp(stack, mailbox)
        auth_settings = AuthSettings(**{
            **dict(database_url=databases.make("authsvc"), listen="127.0.0.1:0",
                   gateway_key="gw-" + secrets.token_urlsafe(16), operator_key="op-" + secrets.token_urlsafe(16),
                   audit_key="au-" + secrets.token_urlsafe(16),
                   token_secrets=((1, secrets.token_bytes(32)),), totp_keys=((1, secrets.token_bytes(32)),),
                   event_keys=eventkeys.producer_keys("authsvc"),
                   redis_url=redis_url, event_stream=stream, relay_enabled=True, smtp_url=smtp_url,
                   public_url=public_url, webauthn_rp_id="localhost", webauthn_origins=(public_url,),
                   argon2_time_cost=2, argon2_memory_kib=19456, argon2_parallelism=1,
                   # Tests log in from several addresses with no device cookie; the new-device
                   # confirmation tests switch it on through auth_options.
                   new_device_confirmation=False),
            **(auth_options or {})})
        auth = await create_auth(auth_settings, clock=clock, migrate_first=True)
        stack.push_async_callback(auth.stop, 0)
        audit_base = dict(database_url=databases.make("auditsvc"), listen="127.0.0.1:0",
                          gateway_key="gw-" + secrets.token_urlsafe(16), operator_key="op-" + secrets.token_urlsafe(16),
                          redis_url=redis_url, event_stream=stream, consumer_enabled=True, block_ms=50,
                          consumer_name=f"e2e-{http_port}", prune_interval_seconds=0, follow_poll_seconds=0.1,
                          event_keys=eventkeys.ACCEPTED)
        if "authsvc_target" in {f.name for f in dataclasses.fields(AuditSettings)}:
            # auditsvc asks authsvc whether a browser session is an admin's (the full log in the pages).
            audit_base.update(authsvc_target=f"127.0.0.1:{auth.port}", authsvc_key=auth_settings.audit_key)
        audit_settings = AuditSettings(**{**audit_base, **(audit_options or {})})
        audit = await create_audit(audit_settings, clock=clock, migrate_first=True)
        stack.push_async_callback(audit.stop, 0)
        relays = [auth.relay] if auth.relay is not None else []
        producers = [(auth.app.db, auth_outbox)]
        gateway = gateway_settings = None
        if with_gateway:
            gateway, gateway_settings = await _start_gateway(
                stack, directory, http_port, public_url, databases, auth, auth_settings, audit, audit_settings,
                redis_url, stream, clock, relays, producers, gateway_options or {})
        channels = {
            "auth": open_channel(f"127.0.0.1:{auth.port}", auth_settings.gateway_key),
            "auth_operator": open_channel(f"127.0.0.1:{auth.port}", auth_settings.operator_key),
            "audit": open_channel(f"127.0.0.1:{audit.port}", audit_settings.gateway_key),
            "audit_operator": open_channel(f"127.0.0.1:{audit.port}", audit_settings.operator_key),
        }
        for channel in channels.values():
            stack.push_async_callback(channel.close)
        yield System(clock=clock, mailbox=mailbox, redis_url=redis_url, stream=stream, auth=auth, audit=audit,
                     gateway=gateway, relays=relays, auth_settings=auth_settings, audit_settings=audit_settings,
                     gateway_settings=gateway_settings, public_url=public_url, channels=channels,
                     _producers=producers)


async def _start_gateway(stack, directory, port, public_url, databases, auth, auth_settings, audit, audit_settings,
                         redis_url, stream, clock, relays, producers, options):
    """The gateway on `port`, and a relay for its outbox unless its app runs one itself (the
    `gatehouse relay --service uploadgw` deployment)."""
    from uploadgw.models import outbox as gateway_outbox
    from uploadgw.server import start as start_gateway
    from uploadgw.settings import Settings as GatewaySettings

    settings = GatewaySettings(**{
        **dict(database_url=databases.make("uploadgw"), storage_dir=str(directory / "store"),
               authsvc_target=f"127.0.0.1:{auth.port}", authsvc_key=auth_settings.gateway_key,
               listen_host="127.0.0.1", listen_port=port, auth_timeout=5.0, sweep_interval_seconds=0,
               access_log=False, fsync=False, redis_url=redis_url, event_stream=stream, public_url=public_url,
               session_key=secrets.token_urlsafe(32), auditsvc_target=f"127.0.0.1:{audit.port}",
               auditsvc_key=audit_settings.gateway_key, event_keys=eventkeys.producer_keys("uploadgw")),
        **options})
    gateway = await start_gateway(settings, clock=clock, migrate_first=True)
    stack.push_async_callback(gateway.stop)
    relay = _find_relay(gateway)
    if relay is None:
        relay = OutboxRelay(gateway.gateway.db, gateway_outbox, redis_url, stream, poll_interval=0.05,
                            name="e2e-uploadgw")
        relay.start()
        stack.push_async_callback(relay.stop)
    relays.append(relay)
    producers.append((gateway.gateway.db, gateway_outbox))
    return gateway, settings


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def system(request, redis_server, tmp_path_factory):
    """One whole system per test module (options from the module's SYSTEM_OPTIONS)."""
    options = getattr(request.module, "SYSTEM_OPTIONS", {})
    async with start_system(tmp_path_factory.mktemp("system"), redis_server.url, **options) as running:
        yield running
