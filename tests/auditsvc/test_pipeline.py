"""The whole pipeline: outbox -> relay -> Redis stream -> consumer -> the logs over gRPC."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
import signal
import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gatehouse.audit.v1 import audit_pb2, audit_pb2_grpc
from gatehouse.infra.clock import FakeClock
from gatehouse.infra.grpcserver import open_channel
from gatehouse.infra.outbox import EventEmitter
from gatehouse.infra.redis_embed import free_port
from gatehouse.infra.relay import OutboxRelay
from tests import eventkeys
from tests.auditsvc.conftest import NOW, build_event, wait_for, xadd_events
from tests.infra.outbox_support import outbox, produce, producer_db


@pytest.fixture
def audit_overrides(redis_server, stream_name):
    """The server runs its own consumer, as `python -m auditsvc` does."""
    return dict(consumer_enabled=True, redis_url=redis_server.url, event_stream=stream_name)


class TickingClock(FakeClock):
    """Each reading is a second later, so that events have distinct times."""

    def now(self) -> dt.datetime:
        return self.advance(1)


@pytest.fixture
def producer_url(make_database_url):
    return make_database_url("producer")


async def _user_log(audit, user_id: str) -> list[str]:
    reply = await audit.audit.ListUserEvents(audit_pb2.ListUserEventsRequest(user_id=user_id))
    return [e.event_id for e in reply.events]


async def test_committed_change_shows_in_the_user_log(audit, producer_url, redis_server, stream_name):
    engine, db = await producer_db(producer_url)
    relay = OutboxRelay(db, outbox, redis_server.url, stream_name)
    relay.start()
    emitter = EventEmitter(outbox, source="testsvc", clock=TickingClock(NOW - dt.timedelta(minutes=1)),
                           signer=eventkeys.signer("testsvc"))
    try:
        ids = await produce(db, emitter, 3, user=("u-carol", "carol"), tag="account:password:change",
                            on_commit=relay.notify)
        await produce(db, emitter, 1, user=("u-carol", "carol"), rollback=True)
        found = await wait_for(lambda: _has(audit, "u-carol", 3), timeout=10)
    finally:
        await relay.stop()
        await engine.dispose()
    assert found == list(reversed(ids))  # newest first
    reply = await audit.audit.ListUserEvents(audit_pb2.ListUserEventsRequest(user_id="u-carol"))
    assert {e.tag for e in reply.events} == {"account:password:change"}
    assert all(e.ip_address == "192.0.2.10" and e.actor.username == "carol" for e in reply.events)
    assert await _user_log(audit, "u1") == []


async def _has(audit, user_id, count):
    ids = await _user_log(audit, user_id)
    return ids if len(ids) == count else None


def test_python_m_auditsvc_serves_and_consumes_from_the_environment(make_database_url, redis_server,
                                                                   stream_name, repo_root):
    port = free_port()
    gateway, operator = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    env = {**os.environ, "PYTHONPATH": str(repo_root),
           "AUDITSVC_DATABASE_URL": make_database_url("auditsvc_main"),  # migrated by the service
           "AUDITSVC_LISTEN": f"127.0.0.1:{port}", "AUDITSVC_GATEWAY_KEY": gateway,
           "AUDITSVC_OPERATOR_KEY": operator, "GATEHOUSE_REDIS_URL": redis_server.url,
           "GATEHOUSE_EVENT_STREAM": stream_name, "AUDITSVC_BLOCK_MS": "100",
           "AUDITSVC_EVENT_KEYS": eventkeys.accepted_env()}
    proc = subprocess.Popen([sys.executable, "-m", "auditsvc"], env=env, cwd=repo_root,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        event = build_event(user=("u-dave", "dave"), at=dt.datetime.now(dt.timezone.utc))
        asyncio.run(_check_running(f"127.0.0.1:{port}", gateway, redis_server.url, stream_name, event))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert b"auditsvc listening" in proc.stdout.read()


async def _check_running(target, gateway_key, redis_url, stream, event):
    async with grpc.aio.insecure_channel(target) as channel:
        async def serving():
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
                return reply.status == health_pb2.HealthCheckResponse.SERVING
            except grpc.aio.AioRpcError:
                return False
        await wait_for(serving, timeout=30, interval=0.1)
    await xadd_events(redis_url, stream, [event])
    async with open_channel(target, gateway_key) as channel:
        stub = audit_pb2_grpc.AuditServiceStub(channel)

        async def stored():
            reply = await stub.ListUserEvents(audit_pb2.ListUserEventsRequest(user_id="u-dave"))
            return [e.event_id for e in reply.events] == [event.event_id]
        await wait_for(stored, timeout=10)
