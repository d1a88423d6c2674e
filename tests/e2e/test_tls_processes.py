"""The real services as separate processes with mutual TLS on every gRPC call (issue 22): the
gateway checks the upload token at authsvc over mTLS, the operator CLI reaches both services over
mTLS, and a plaintext client is refused. One upload goes end to end: twine -> gateway -> authsvc ->
stored, indexed, and its event read back from auditsvc with `gatehouse audit`."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import aiohttp
import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gatehouse.auth.v1 import admin_pb2, admin_pb2_grpc, common_pb2
from gatehouse.cli.up import http_ready
from gatehouse.infra.grpcserver import open_bare_channel, open_channel
from gatehouse.infra.redis_embed import free_port
from tests.deploy.test_probes import kubelet_grpc_check
from tests.scale.cluster import REPO_ROOT, SERVICES, Fleet, fleet_env
from tests.tlsfiles import Identity
from tests.uploadgw.conftest import twine
from tests.uploadgw.dists import make_wheel

PROJECT = "tls-proof"


async def tls_ready(target: str, operator: Identity, deadline: float) -> None:
    """Wait until a TLS server reports SERVING (the health check, with the operator's certificate)."""
    async with open_bare_channel(target, tls=operator.tls("GATEHOUSE")) as channel:
        while True:
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            assert time.monotonic() < deadline, f"{target} did not become ready over TLS"
            await asyncio.sleep(0.2)


@pytest.mark.timeout(240)
async def test_the_services_as_processes_call_each_other_over_mutual_tls(make_database_url, redis_server,
                                                                         stream_name, tmp_path):
    ca = trustme.CA()
    parties = {name: Identity(tmp_path / "tls" / name).write(ca, name, "127.0.0.1")
               for name in ("authsvc", "auditsvc", "uploadgw", "operator")}
    env = fleet_env({s: make_database_url(s) for s in SERVICES}, redis_server.url, stream_name, tmp_path)
    env.update({**parties["authsvc"].env("AUTHSVC"), **parties["auditsvc"].env("AUDITSVC"),
                **parties["uploadgw"].env("UPLOADGW"), **parties["operator"].env("GATEHOUSE"),
                "AUTHSVC_TLS_CLIENT_AUTH": "true", "AUDITSVC_TLS_CLIENT_AUTH": "true",
                "UPLOADGW_RELAY_ENABLED": "true", "AUTHSVC_RELAY_ENABLED": "true"})
    fleet = Fleet(env, tmp_path)
    auth, audit, http = fleet.auth_ports[0], fleet.audit_ports[0], fleet.http_ports[0]
    probe = free_port()
    try:
        await asyncio.to_thread(fleet.migrate)
        fleet.spawn("authsvc", ["-m", "authsvc"], {"AUTHSVC_LISTEN": f"127.0.0.1:{auth}",
                                                   "AUTHSVC_HEALTH_LISTEN": f"127.0.0.1:{probe}"})
        fleet.spawn("auditsvc", ["-m", "auditsvc"], {"AUDITSVC_LISTEN": f"127.0.0.1:{audit}"})
        fleet.spawn("uploadgw", ["-m", "uploadgw"], {
            "UPLOADGW_LISTEN": f"127.0.0.1:{http}", "GATEHOUSE_PUBLIC_URL": f"http://127.0.0.1:{http}",
            "UPLOADGW_AUTHSVC_TARGET": f"127.0.0.1:{auth}", "UPLOADGW_AUTHSVC_KEY": env["AUTHSVC_GATEWAY_KEY"],
            "UPLOADGW_AUDITSVC_TARGET": f"127.0.0.1:{audit}", "UPLOADGW_AUDITSVC_KEY": env["AUDITSVC_GATEWAY_KEY"]})
        deadline = time.monotonic() + 90
        for port in (auth, audit):
            await tls_ready(f"127.0.0.1:{port}", parties["operator"], deadline)
        await asyncio.to_thread(http_ready, f"http://127.0.0.1:{http}/_health/ready", deadline)
        fleet.assert_alive()

        assert await kubelet_grpc_check(probe) == health_pb2.HealthCheckResponse.SERVING  # the probe port
        for port in (auth, audit):  # a plaintext client, even with the right credential, is refused
            async with open_channel(f"127.0.0.1:{port}", env["AUTHSVC_OPERATOR_KEY"]) as plain:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await health_pb2_grpc.HealthStub(plain).Check(health_pb2.HealthCheckRequest(), timeout=3)
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

        async with open_channel(f"127.0.0.1:{auth}", env["AUTHSVC_OPERATOR_KEY"],
                                tls=parties["operator"].tls("GATEHOUSE")) as channel:
            admin = admin_pb2_grpc.AdminServiceStub(channel)
            await admin.CreateUser(admin_pb2.AdminCreateUserRequest(
                username="tlsuser", email="tlsuser@example.org", password="correct horse battery 42",
                email_verified=True))
            await admin.AddRole(admin_pb2.AdminAddRoleRequest(
                project_name=PROJECT, username="tlsuser", role=common_pb2.ROLE_OWNER, create_project=True))
            token = (await admin.MintToken(admin_pb2.AdminMintTokenRequest(
                username="tlsuser", description="tls", scope=common_pb2.TokenScope(all_projects=True)))).token

        (tmp_path / "dist").mkdir()
        wheel = make_wheel(tmp_path / "dist", PROJECT, "1.0")
        uploaded = await twine(f"http://127.0.0.1:{http}/legacy/", wheel, password=token)
        assert uploaded.rc == 0, f"{uploaded.output}\n{fleet.tails()}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{http}/simple/{PROJECT}/") as page:
                assert page.status == 200 and wheel.name in await page.text()

        # The operator CLI over mTLS to both services: the project's name resolved at authsvc, its
        # log read at auditsvc, where the upload's event arrives through the relay and the stream.
        cli_env = {**os.environ, **env, "PYTHONPATH": str(REPO_ROOT), "GATEHOUSE_AUTHSVC_TARGET": f"127.0.0.1:{auth}",
                   "GATEHOUSE_AUDITSVC_TARGET": f"127.0.0.1:{audit}"}
        for _ in range(100):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gatehouse.cli", "audit", "project", PROJECT, cwd=tmp_path, env=cli_env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            out = (await asyncio.wait_for(proc.communicate(), 60))[0].decode()
            assert proc.returncode == 0, out
            if "file:add" in out:
                break
            await asyncio.sleep(0.3)
        assert "file:add" in out and wheel.name in out, out
        fleet.assert_alive()
    finally:
        fleet.stop()
