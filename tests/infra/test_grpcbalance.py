"""Balanced calls between the services (gatehouse.infra.grpcbalance): a channel to a name that
resolves to several servers sends calls to every one of them, skips one that reports NOT_SERVING,
and retries an idempotent call that fails UNAVAILABLE, never any other. Real gRPC servers on
127.0.0.1-3 behind one name served by a loopback DNS server (tests/nameserver.py)."""

from __future__ import annotations

import contextlib
import importlib

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2

from gatehouse.diag.v1 import echo_pb2, echo_pb2_grpc
from gatehouse.infra.grpcbalance import IDEMPOTENT_METHODS, server_options, service_config
from gatehouse.infra.grpcserver import CallerRole, Credentials, open_bare_channel, open_channel, start_server
from gatehouse.infra.metrics import GrpcMetrics
from tests.nameserver import NameServer, loopback_addresses, port_free_on

KEY = "test-service-key"
ECHO = "/gatehouse.diag.v1.EchoService/Echo"
NAME = "authsvc.test"
# Calls that act once and must never be repeated by the channel: codes, challenges, mints, logins, changes.
NEVER_RETRIED = {
    "gatehouse.auth.v1.AccountService": ("Login", "VerifyEmail", "ResetPassword", "Register", "Logout",
                                         "RevokeSession", "ChangePassword", "Reauthenticate"),
    "gatehouse.auth.v1.TwoFactorService": ("CompleteLogin", "ConfirmTotpSetup", "BeginWebAuthnLogin",
                                           "CompleteWebAuthnRegistration", "RegenerateRecoveryCodes"),
    "gatehouse.auth.v1.TokenService": ("CreateToken", "DeleteToken"),
    "gatehouse.auth.v1.AdminService": ("MintToken", "CreateUser", "RevokeToken", "DeleteProject"),
}


class Replicas:
    """Servers on 127.0.0.1..n, one port, each counting the calls it served in its own metrics."""

    def __init__(self, count: int = 3) -> None:
        self.addresses = loopback_addresses(count)
        self.port = port_free_on(self.addresses)
        self.metrics = [GrpcMetrics(f"replica{i}") for i in range(count)]
        self.servers: list[grpc.aio.Server] = []
        self.health: list = []

    async def start(self) -> Replicas:
        for address, metrics in zip(self.addresses, self.metrics):
            server, _, health = await start_server(listen=f"{address}:{self.port}", register=lambda s: [],
                                                   credentials=Credentials({KEY: CallerRole.SERVICE}),
                                                   metrics=metrics)
            self.servers.append(server)
            self.health.append(health)
        return self

    def served(self) -> list[int]:
        return [int(m.registry.get_sample_value("gatehouse_grpc_requests_total",
                                                {"service": m.service, "method": ECHO, "code": "OK"}) or 0)
                for m in self.metrics]

    async def stop(self) -> None:
        for server in self.servers:
            await server.stop(0)


@pytest.fixture
async def replicas():
    started = await Replicas().start()
    with NameServer({NAME: started.addresses}) as dns:
        started.target = dns.target(NAME, started.port)
        yield started
    await started.stop()


async def _echo(channel: grpc.aio.Channel, calls: int) -> None:
    stub = echo_pb2_grpc.EchoServiceStub(channel)
    for i in range(calls):
        assert (await stub.Echo(echo_pb2.EchoRequest(payload=b"%d" % i))).payload == b"%d" % i


async def test_calls_spread_over_every_address_the_name_resolves_to(replicas):
    async with open_channel(replicas.target, KEY) as channel:
        await _echo(channel, 90)
    served = replicas.served()
    assert sum(served) == 90 and min(served) >= 90 * 0.2, served


async def test_a_server_that_reports_not_serving_gets_no_new_calls(replicas):
    async with open_channel(replicas.target, KEY) as channel:
        await _echo(channel, 9)
        assert min(replicas.served()) >= 1  # every replica was in use
        await replicas.health[0].set("", health_pb2.HealthCheckResponse.NOT_SERVING)  # it drains
        before = replicas.served()
        for _ in range(100):  # the channel's health watch hears of it within moments
            await _echo(channel, 1)
            if replicas.served()[0] == before[0] and sum(replicas.served()) - sum(before) >= 30:
                break
        after = replicas.served()
        await _echo(channel, 30)
        final = replicas.served()
    assert final[0] == after[0], (before, after, final)
    assert min(final[1] - after[1], final[2] - after[2]) >= 10, (after, final)


class Flaky:
    """A server whose methods fail UNAVAILABLE on their first attempt (as a pod that went away
    would answer) and succeed after; it counts the attempts of each."""

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}

    def handler(self, method: str) -> grpc.RpcMethodHandler:
        async def behave(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            self.attempts[method] = self.attempts.get(method, 0) + 1
            if self.attempts[method] == 1:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "going away")
            return request

        return grpc.unary_unary_rpc_method_handler(behave)

    @contextlib.asynccontextmanager
    async def serving(self, service: str, methods: tuple[str, ...]):
        server = grpc.aio.server(options=server_options())
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            service, {m: self.handler(m) for m in methods}),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            yield f"127.0.0.1:{port}"
        finally:
            await server.stop(0)


async def test_an_idempotent_call_that_fails_unavailable_is_tried_again_and_a_mint_is_never():
    flaky = Flaky()
    async with flaky.serving("gatehouse.auth.v1.AdminService", ("GetUser", "MintToken")) as target:
        async with open_bare_channel(target) as channel:
            assert await channel.unary_unary("/gatehouse.auth.v1.AdminService/GetUser")(b"x", timeout=5) == b"x"
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await channel.unary_unary("/gatehouse.auth.v1.AdminService/MintToken")(b"x", timeout=5)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    assert flaky.attempts == {"GetUser": 2, "MintToken": 1}


def test_the_idempotent_methods_exist_and_no_single_use_call_is_among_them():
    for module in ("accounts", "admin", "projects", "tokens", "twofactor"):
        importlib.import_module(f"gatehouse.auth.v1.{module}_pb2")
    importlib.import_module("gatehouse.audit.v1.audit_pb2")
    pool = descriptor_pool.Default()
    for service, methods in IDEMPOTENT_METHODS.items():
        found = {m.name for m in pool.FindServiceByName(service).methods}
        assert set(methods) <= found, (service, set(methods) - found)
        assert not set(methods) & set(NEVER_RETRIED.get(service, ())), service
    retried = service_config()["methodConfig"][0]
    assert len(retried["name"]) == sum(len(m) for m in IDEMPOTENT_METHODS.values())
    assert retried["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
