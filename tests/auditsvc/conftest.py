"""An audit service on a real port over a migrated database, plus event builders and Redis helpers."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import secrets

import grpc
import pytest
import redis.asyncio as aioredis

from auditsvc.consumer import decode_entry
from auditsvc.server import MIGRATIONS, create_server
from auditsvc.settings import Settings
from auditsvc.store.service import AuditLog
from gatehouse.audit.v1 import audit_pb2_grpc
from gatehouse.infra.clock import FakeClock
from gatehouse.infra.db import make_engine, make_session_factory, upgrade
from gatehouse.infra.grpcserver import open_channel
from gatehouse.infra.outbox import ActorRef, EventEmitter, Origin
from tests import eventkeys

NOW = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.timezone.utc)


def audit_settings(database_url: str, **overrides) -> Settings:
    base = dict(
        database_url=database_url, listen="127.0.0.1:0",
        gateway_key="gw-" + secrets.token_urlsafe(16), operator_key="op-" + secrets.token_urlsafe(16),
        consumer_enabled=False, consumer_name="test-consumer", block_ms=100, prune_interval_seconds=0,
        follow_poll_seconds=0.05, event_keys=eventkeys.ACCEPTED,
    )
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
def audit_db_url(make_database_url):
    """A fresh database migrated to head (migrated here, outside the test's event loop)."""
    url = make_database_url("auditsvc")
    upgrade(url, MIGRATIONS)
    return url


@pytest.fixture
def clock():
    return FakeClock(NOW)


@pytest.fixture
async def audit_log(audit_db_url, clock):
    engine = make_engine(audit_db_url)
    yield AuditLog(make_session_factory(engine), clock=clock)
    await engine.dispose()


def build_event(tag="account:login:success", *, clock=None, actor=None, user=("u-alice", "alice"),
                project=None, ip="192.0.2.1", ua="twine/6.0", details=None, at=None):
    """A gatehouse.events.v1.Event as a producer would emit it."""
    clk = clock or FakeClock(at or NOW)
    if at is not None:
        clk.set(at)
    if actor is None:
        actor = ActorRef.user(*user) if user else ActorRef("anonymous")
    emitter = EventEmitter(None, source="testsvc", clock=clk)
    return emitter.build(tag, actor=actor, user=user, project=project, origin=Origin(ip, ua),
                         details=details or {})


async def ingest_events(log: AuditLog, events) -> None:
    """Store events through the consumer's own decoding, without a stream."""
    records = [decode_entry({b"event": eventkeys.seal(e)}, eventkeys.VERIFIER) for e in events]
    result = await log.ingest(records)
    assert not result.rejected


async def xadd_events(redis_url: str, stream: str, events) -> list[bytes]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        return [await client.xadd(stream, {"event_id": e.event_id, "tag": e.tag, "event": eventkeys.seal(e)})
                for e in events]
    finally:
        await client.aclose()


async def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval)


@dataclasses.dataclass
class AuditHarness:
    running: object
    settings: Settings
    clock: FakeClock
    gateway: grpc.aio.Channel
    operator: grpc.aio.Channel

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.running.port}"

    @property
    def log(self) -> AuditLog:
        return self.running.app.log

    @property
    def audit(self):
        return audit_pb2_grpc.AuditServiceStub(self.gateway)

    @property
    def admin(self):
        return audit_pb2_grpc.AuditAdminServiceStub(self.operator)

    def stub(self, credential: str | None, admin: bool = False):
        channel = grpc.aio.insecure_channel(self.target) if credential is None else open_channel(self.target, credential)
        cls = audit_pb2_grpc.AuditAdminServiceStub if admin else audit_pb2_grpc.AuditServiceStub
        return cls(channel), channel


@pytest.fixture
def audit_overrides():
    """Override in a test module to change the audit service's settings."""
    return {}


@pytest.fixture
async def audit(audit_db_url, clock, audit_overrides):
    settings = audit_settings(audit_db_url, **audit_overrides)
    running = await create_server(settings, clock=clock)
    gateway = open_channel(f"127.0.0.1:{running.port}", settings.gateway_key)
    operator = open_channel(f"127.0.0.1:{running.port}", settings.operator_key)
    yield AuditHarness(running, settings, clock, gateway, operator)
    await gateway.close()
    await operator.close()
    await running.stop(grace=0)
