"""The services' event loop: uvloop's by default, the standard one on request."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
import uvloop

from gatehouse.infra.runner import event_loop_factory
from gatehouse.infra.settings import SettingsError


def test_uvloop_by_default_and_asyncio_on_request(monkeypatch):
    monkeypatch.delenv("GATEHOUSE_EVENT_LOOP", raising=False)
    assert event_loop_factory() is uvloop.new_event_loop
    monkeypatch.setenv("GATEHOUSE_EVENT_LOOP", "asyncio")
    assert event_loop_factory() is None
    monkeypatch.setenv("GATEHOUSE_EVENT_LOOP", "trio")
    with pytest.raises(SettingsError, match="GATEHOUSE_EVENT_LOOP must be 'uvloop' or 'asyncio'"):
        event_loop_factory()


def test_a_service_process_refuses_an_unknown_loop():
    env = {"GATEHOUSE_EVENT_LOOP": "trio", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "auditsvc"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "auditsvc: GATEHOUSE_EVENT_LOOP must be" in result.stderr, result.stderr


def test_grpc_aio_runs_on_uvloop():
    """A gRPC server and client on one uvloop loop (as each service runs them)."""
    import grpc

    from gatehouse.diag.v1 import echo_pb2, echo_pb2_grpc

    class Echo(echo_pb2_grpc.EchoServiceServicer):
        async def Echo(self, request, context):
            return echo_pb2.EchoResponse(payload=request.payload)

    async def main() -> bytes:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        server = grpc.aio.server()
        echo_pb2_grpc.add_EchoServiceServicer_to_server(Echo(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                reply = await echo_pb2_grpc.EchoServiceStub(channel).Echo(echo_pb2.EchoRequest(payload=b"ping"),
                                                                          timeout=10)
                return reply.payload
        finally:
            await server.stop(None)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(main()) == b"ping"
