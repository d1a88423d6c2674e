"""Unary calls as messages of one stream (gatehouse.infra.streamcalls), over a real gRPC server on
a loopback port with the Gatehouse interceptor: results by id, statuses as a unary call's, deadlines,
a stream that breaks, the credential, a server without the stream method; and over servers on
127.0.0.1-3 behind one name (tests/nameserver.py): streams that spread, renew, and carry a lost
call to another server."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from gatehouse.auth.v1 import tokens_pb2, tokens_pb2_grpc
from gatehouse.infra.errors import PermissionDenied, ResourceExhausted
from gatehouse.diag.v1 import echo_pb2, echo_pb2_grpc
from gatehouse.infra.grpcserver import (CallerRole, Credentials, call_metadata, open_bare_channel,
                                        retry_after, start_server)
from gatehouse.infra.metrics import GrpcMetrics
from gatehouse.infra.rpcstatus import ErrorStatus
from gatehouse.infra.streamcalls import StreamedCalls, StreamedCaller
from tests.nameserver import NameServer, loopback_addresses, port_free_on

KEY = "test-gateway-key"
METHOD = "/gatehouse.auth.v1.TokenService/VerifyUploadToken"


class Tokens(tokens_pb2_grpc.TokenServiceServicer):
    """A TokenService whose upload check is the test's: project "slow-N" answers after N ms,
    "denied" and "busy" are refused, "broken" raises, anything else is granted."""

    def __init__(self, metrics, *, streamed=True):
        self.handled: list[str] = []
        self.calls = StreamedCalls(METHOD, self.check, tokens_pb2.VerifyUploadTokenResult, metrics=metrics)
        if not streamed:  # an authsvc from before the stream method
            self.VerifyUploadTokens = None

    async def check(self, request):
        name = request.project_name
        self.handled.append(name)
        if name.startswith("slow-"):
            await asyncio.sleep(int(name[5:]) / 1000)
        if name == "denied":
            raise PermissionDenied("This token is not valid for project 'denied'.", reason="not_in_scope")
        if name == "busy":
            raise ResourceExhausted("Too many uploads; try again later.", reason="rate", retry_after=30)
        if name == "broken":
            raise RuntimeError("a bug")
        return tokens_pb2.VerifyUploadTokenResponse(user_id="u1", project_id="p-" + name, project_name=name)

    async def VerifyUploadTokens(self, request_iterator, context):
        await self.calls.serve(request_iterator, context)


class Served:
    def __init__(self, *, streamed=True, port=0, host="127.0.0.1"):
        self.metrics = GrpcMetrics("test")
        self.tokens = Tokens(self.metrics, streamed=streamed)
        self.streamed, self.port, self.host = streamed, port, host

    async def start(self):
        def register(server):
            handlers = tokens_pb2_grpc.add_TokenServiceServicer_to_server
            if self.streamed:
                handlers(self.tokens, server)
            else:
                server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
                    "gatehouse.auth.v1.TokenService", {"VerifyUploadToken": grpc.unary_unary_rpc_method_handler(
                        self.unary, tokens_pb2.VerifyUploadTokenRequest.FromString,
                        tokens_pb2.VerifyUploadTokenResponse.SerializeToString)}),))
            return ["gatehouse.auth.v1.TokenService"]

        self.server, self.port, _ = await start_server(
            listen=f"{self.host}:{self.port}", register=register, credentials=Credentials({KEY: CallerRole.SERVICE}),
            metrics=self.metrics)
        return self

    async def unary(self, request, context):
        return await self.tokens.check(request)

    def count(self, code: str) -> float:
        return self.metrics.registry.get_sample_value(
            "gatehouse_grpc_requests_total", {"service": "test", "method": METHOD, "code": code}) or 0


@pytest.fixture
async def served():
    served = await Served().start()
    yield served
    await served.server.stop(0)


@pytest.fixture
async def older():
    """An authsvc from before the stream method: VerifyUploadToken only."""
    served = await Served(streamed=False).start()
    yield served
    await served.server.stop(0)


@contextlib.asynccontextmanager
async def opened(port: int, key: str = KEY, *, target: str | None = None, **spread):
    """(the channel's stub, a StreamedCaller on it); both closed afterwards. `spread`: the caller's
    width, max_age and retry_lost, on a balanced channel to `target`."""
    channel = open_bare_channel(target) if target else grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = tokens_pb2_grpc.TokenServiceStub(channel)
    caller = StreamedCaller(lambda: stub.VerifyUploadTokens(metadata=call_metadata(key)),
                            tokens_pb2.VerifyUploadTokenCall, **spread)
    try:
        yield channel, stub, caller
    finally:
        await caller.close()
        await channel.close()


def request(project: str) -> tokens_pb2.VerifyUploadTokenRequest:
    return tokens_pb2.VerifyUploadTokenRequest(token="pypi-x", project_name=project)


async def refusal(caller: StreamedCaller, project: str, timeout: float = 5) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await caller.call(request(project), timeout)
    return refused.value


async def test_results_find_their_calls_whatever_order_they_come_in(served):
    async with opened(served.port) as (channel, _stub, caller):
        replies = await asyncio.gather(*(caller.call(request(f"slow-{ms}"), 5) for ms in (300, 10, 150, 0)))
        assert [r.project_id for r in replies] == ["p-slow-300", "p-slow-10", "p-slow-150", "p-slow-0"]
        first = caller._slots[0]
        assert (await caller.call(request("again"), 5)).project_id == "p-again"
        assert caller._slots[0] is first  # one stream for all of them
        assert served.count("OK") == 5


async def test_a_denial_is_the_unary_calls_error_and_the_stream_stays_up(served):
    async with opened(served.port) as (channel, _stub, caller):
        denied = await refusal(caller, "denied")
        assert denied.code() is grpc.StatusCode.PERMISSION_DENIED
        assert denied.details() == "This token is not valid for project 'denied'."
        busy = await refusal(caller, "busy")
        assert busy.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and retry_after(busy) == 30
        broken = await refusal(caller, "broken")
        assert broken.code() is grpc.StatusCode.INTERNAL and broken.details() == "internal error"
        assert (await caller.call(request("fine"), 5)).project_id == "p-fine"
        labels = {"service": "test", "method": METHOD}
        assert served.metrics.registry.get_sample_value(
            "gatehouse_grpc_denials_total", {**labels, "reason": "not_in_scope"}) == 1
        assert served.count("PERMISSION_DENIED") == 1 and served.count("INTERNAL") == 1


async def test_deadlines_hold_on_both_sides(served):
    async with opened(served.port) as (channel, _stub, caller):
        assert (await refusal(caller, "slow-400", 0.1)).code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert (await caller.call(request("after"), 5)).project_id == "p-after"  # the stream is still good
        # The server holds the same deadline: the check was cancelled there, and counted so.
        for _ in range(100):
            if served.count("DEADLINE_EXCEEDED"):
                break
            await asyncio.sleep(0.02)
        assert served.count("DEADLINE_EXCEEDED") == 1 and "slow-400" in served.tokens.handled


async def test_calls_in_flight_fail_unavailable_when_the_server_goes_and_the_next_call_opens_a_new_stream():
    served = await Served().start()
    try:
        await _server_goes_and_comes_back(served)
    finally:
        await served.server.stop(0)


async def _server_goes_and_comes_back(served: Served) -> None:
    async with opened(served.port) as (channel, _stub, caller):
        assert (await caller.call(request("first"), 5)).project_id == "p-first"
        waiting = asyncio.ensure_future(caller.call(request("slow-2000"), 5))
        await asyncio.sleep(0.2)
        await served.server.stop(0)  # a crash, as far as the stream can tell
        with pytest.raises(grpc.aio.AioRpcError) as lost:
            await waiting
        assert lost.value.code() is grpc.StatusCode.UNAVAILABLE
        assert (await refusal(caller, "nobody", 2)).code() is grpc.StatusCode.UNAVAILABLE
        back = await Served(port=served.port).start()  # back, on the same port
        served.server = back.server  # (stopped by the test)
        await asyncio.wait_for(channel.channel_ready(), 10)  # once the channel has reconnected (as for any call)
        assert (await caller.call(request("back"), 5)).project_id == "p-back"


async def test_the_stream_needs_the_service_credential(served):
    async with opened(served.port, key="wrong key") as (channel, _stub, caller):
        assert (await refusal(caller, "anything")).code() is grpc.StatusCode.UNAUTHENTICATED
        assert served.tokens.handled == []


async def test_a_server_without_the_stream_method_is_reported_unimplemented(older):
    async with opened(older.port) as (channel, stub, caller):
        assert (await refusal(caller, "anything")).code() is grpc.StatusCode.UNIMPLEMENTED and caller.unimplemented
        assert older.tokens.handled == []  # nothing ran: the caller may make the unary call instead
        reply = await stub.VerifyUploadToken(request("unary"), metadata=call_metadata(KEY), timeout=5)
        assert reply.project_id == "p-unary"


async def test_the_gateways_upload_check_falls_back_to_unary_calls_on_an_older_authsvc(older):
    from gatehouse.infra.outbox import Origin
    from uploadgw.authclient import AuthClient

    async with opened(older.port) as (channel, _stub, _caller):
        client = AuthClient(channel, credential=KEY, timeout=5)
        first = await client.verify_upload("pypi-x", "one", Origin())
        second = await client.verify_upload("pypi-x", "two", Origin())
        await client.close()
    assert (first.project_id, second.project_id) == ("p-one", "p-two")
    assert older.tokens.handled == ["one", "two"]  # each ran once, as a unary call


async def test_a_streamed_refusal_carries_the_status_details_a_unary_call_does(served, older):
    """One status mapping for both ways a call can come: the same code, message, ErrorInfo and
    RetryInfo from StreamedCalls as from the interceptor around the unary method."""
    async with opened(served.port) as (_channel, _stub, caller), opened(older.port) as (_c, unary_stub, _u):
        for project, reason, wait in (("denied", "NOT_IN_SCOPE", None), ("busy", "RATE", 30),
                                      ("broken", "INTERNAL", None)):
            streamed = ErrorStatus.of_rpc(await refusal(caller, project))
            with pytest.raises(grpc.aio.AioRpcError) as unary:
                await unary_stub.VerifyUploadToken(request(project), metadata=call_metadata(KEY), timeout=5)
            assert streamed == ErrorStatus.of_rpc(unary.value)
            assert (streamed.reason, streamed.domain, streamed.retry_after) == (reason, "gatehouse", wait)
            # Any gRPC client reads it the standard way (grpcio-status), from either path.
            for err in (unary.value, await refusal(caller, project)):
                status = rpc_status.from_call(err)
                info = error_details_pb2.ErrorInfo()
                assert status.details[0].Unpack(info) and info.reason == reason


@pytest.fixture
async def replicas():
    """Three TokenServices on 127.0.0.1-3, one port, behind the name authsvc.test: (target, [Served])."""
    addresses = loopback_addresses(3)
    port = port_free_on(addresses)
    servers = [await Served(port=port, host=address).start() for address in addresses]
    try:
        with NameServer({"authsvc.test": addresses}) as dns:
            yield dns.target("authsvc.test", port), servers
    finally:
        for served in servers:
            await served.server.stop(0)


async def _connect_to_all(channel: grpc.aio.Channel, servers: list[Served]) -> None:
    """Echo calls until each server has answered one: the channel has a connection to each (as
    the gateway's has, connected at its start, by the time uploads come)."""
    stub = echo_pb2_grpc.EchoServiceStub(channel)
    for _ in range(100):
        if all(s.metrics.registry.get_sample_value("gatehouse_grpc_requests_total", {
                "service": "test", "method": "/gatehouse.diag.v1.EchoService/Echo", "code": "OK"}) for s in servers):
            return
        await stub.Echo(echo_pb2.EchoRequest(), metadata=call_metadata(KEY), timeout=5)
    raise AssertionError("the channel did not reach every server")


async def test_streams_spread_their_calls_over_every_server_behind_the_name(replicas):
    target, servers = replicas
    async with opened(0, target=target, width=4) as (channel, _stub, caller):
        await _connect_to_all(channel, servers)
        for i in range(40):
            await asyncio.gather(*(caller.call(request(f"p{i}-{j}"), 5) for j in range(3)))
    handled = [len(s.tokens.handled) for s in servers]
    assert sum(handled) == 120 and min(handled) >= 120 * 0.2, handled


async def test_a_call_whose_server_dies_is_answered_by_another_when_it_may_run_twice(replicas):
    target, servers = replicas
    async with opened(0, target=target, width=1, retry_lost=True) as (_channel, _stub, caller):
        waiting = asyncio.ensure_future(caller.call(request("slow-1500"), 10))
        while not any("slow-1500" in s.tokens.handled for s in servers):
            await asyncio.sleep(0.01)
        (holder,) = [s for s in servers if "slow-1500" in s.tokens.handled]
        await holder.server.stop(0)  # a crash, as far as the stream can tell
        assert (await waiting).project_id == "p-slow-1500"
    assert sum(s.tokens.handled.count("slow-1500") for s in servers) == 2  # it ran twice, on two servers


async def test_an_old_stream_takes_no_new_calls_and_answers_the_ones_it_has(served):
    async with opened(served.port, width=1, max_age=0.3) as (_channel, _stub, caller):
        slow = asyncio.ensure_future(caller.call(request("slow-600"), 5))
        await asyncio.sleep(0.05)
        first = caller._slots[0]
        await asyncio.sleep(0.35)  # past its age (at most 0.3 s)
        assert (await caller.call(request("next"), 5)).project_id == "p-next"
        assert caller._slots[0] is not first  # the next call opened a new stream
        assert (await slow).project_id == "p-slow-600"  # the old one still answered
        await asyncio.wait_for(first.call.wait_for_connection(), 1)
        assert await asyncio.wait_for(first.call.code(), 2) is grpc.StatusCode.OK  # then ended cleanly
    assert served.count("OK") == 2 and served.count("UNAVAILABLE") == 0
