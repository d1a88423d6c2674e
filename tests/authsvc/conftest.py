"""An auth service on a real port, over a fresh database, with stubs for the gateway and the CLI."""

from __future__ import annotations

import dataclasses
import secrets

import grpc
import pytest

from authsvc.server import create_server
from authsvc.settings import Settings
from gatehouse.auth.v1 import accounts_pb2_grpc, admin_pb2_grpc, projects_pb2_grpc, tokens_pb2_grpc, twofactor_pb2_grpc
from gatehouse.infra.clock import FakeClock
from gatehouse.infra.grpcserver import open_channel
from tests import eventkeys


def auth_settings(database_url: str, **overrides) -> Settings:
    base = dict(
        database_url=database_url,
        listen="127.0.0.1:0",
        gateway_key="gw-" + secrets.token_urlsafe(16),
        operator_key="op-" + secrets.token_urlsafe(16),
        audit_key="au-" + secrets.token_urlsafe(16),
        token_secrets=((1, secrets.token_bytes(32)),),
        totp_keys=((1, secrets.token_bytes(32)),),
        event_keys=eventkeys.producer_keys("authsvc"),
        relay_enabled=False,
        # Most tests log in from several addresses with no device cookie; the new-device
        # confirmation tests switch it on (tests/authsvc/test_accounts_new_device.py).
        new_device_confirmation=False,
        # The ASVS minimum for argon2id, to keep the suite quick; production defaults are higher.
        argon2_time_cost=2, argon2_memory_kib=19456, argon2_parallelism=1,
    )
    base.update(overrides)
    return Settings(**base)


@dataclasses.dataclass
class AuthHarness:
    running: object
    settings: Settings
    clock: FakeClock
    gateway: grpc.aio.Channel
    operator: grpc.aio.Channel

    @property
    def port(self) -> int:
        return self.running.port

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.running.port}"

    @property
    def accounts(self):
        return accounts_pb2_grpc.AccountServiceStub(self.gateway)

    @property
    def projects(self):
        return projects_pb2_grpc.ProjectServiceStub(self.gateway)

    @property
    def tokens(self):
        return tokens_pb2_grpc.TokenServiceStub(self.gateway)

    @property
    def twofactor(self):
        return twofactor_pb2_grpc.TwoFactorServiceStub(self.gateway)

    @property
    def admin(self):
        return admin_pb2_grpc.AdminServiceStub(self.operator)

    def channel(self, credential: str | None) -> grpc.aio.Channel:
        if credential is None:
            return grpc.aio.insecure_channel(self.target)
        return open_channel(self.target, credential)


@pytest.fixture
def auth_overrides():
    """Override in a test module to change the auth service's settings."""
    return {}


@pytest.fixture
async def auth(make_database_url, auth_overrides):
    clock = FakeClock()
    clock.set(__import__("datetime").datetime.now(__import__("datetime").timezone.utc))
    settings = auth_settings(make_database_url("authsvc"), **auth_overrides)
    running = await create_server(settings, clock=clock, migrate_first=True)
    gateway = open_channel(f"127.0.0.1:{running.port}", settings.gateway_key)
    operator = open_channel(f"127.0.0.1:{running.port}", settings.operator_key)
    harness = AuthHarness(running=running, settings=settings, clock=clock, gateway=gateway, operator=operator)
    yield harness
    await gateway.close()
    await operator.close()
    await running.stop(grace=0)
