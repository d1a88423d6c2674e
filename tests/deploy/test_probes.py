"""The probes the manifests declare get the answers they expect from the real services.

Each service starts from the environment its pod gets in the prod overlay (only the database,
the listen address and the metrics port are made local), and is probed the way the kubelet
probes it: a gRPC health check without any credential, or an HTTP GET on the declared path.
"""

from __future__ import annotations

import dataclasses

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.deploy.manifests import Manifests


def pod_env(manifests: Manifests, name: str) -> tuple[dict, dict[str, str]]:
    (container,) = manifests.workload(name).pod["containers"]
    return container, manifests.environment(container)


async def kubelet_grpc_check(port: int, service: str = "") -> int:
    """What `grpc: {port: …}` does: Health/Check on the pod's port, no metadata at all."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5)
    return reply.status


@pytest.mark.timeout(120)
async def test_the_grpc_services_answer_the_kubelets_health_probe(rendered, make_database_url):
    from auditsvc.server import create_server as create_audit
    from auditsvc.settings import Settings as AuditSettings
    from authsvc.server import create_server as create_auth
    from authsvc.settings import Settings as AuthSettings

    prod = rendered["prod"]
    _, auth_env = pod_env(prod, "authsvc")
    auth = await create_auth(dataclasses.replace(
        AuthSettings.from_env(auth_env), database_url=make_database_url("authsvc"), listen="127.0.0.1:0",
        metrics_port=0, redis_url="", smtp_url=""), migrate_first=True)
    _, audit_env = pod_env(prod, "auditsvc")
    audit = await create_audit(dataclasses.replace(
        AuditSettings.from_env(audit_env), database_url=make_database_url("auditsvc"), listen="127.0.0.1:0",
        metrics_port=0, redis_url=""), migrate_first=True)
    try:
        for running, name in ((auth, "authsvc"), (audit, "auditsvc")):
            container, _ = pod_env(prod, name)
            assert {container[p]["grpc"].get("service", "") for p in ("readinessProbe", "livenessProbe")} == {""}
            assert await kubelet_grpc_check(running.port) == health_pb2.HealthCheckResponse.SERVING, name
    finally:
        await auth.stop(grace=0)
        await audit.stop(grace=0)


@pytest.mark.timeout(120)
async def test_the_gateway_answers_its_http_probes(rendered, make_database_url, tmp_path):
    from authsvc.server import create_server as create_auth
    from authsvc.settings import Settings as AuthSettings
    from uploadgw.server import start
    from uploadgw.settings import Settings as GatewaySettings

    prod = rendered["prod"]
    _, auth_env = pod_env(prod, "authsvc")
    auth = await create_auth(dataclasses.replace(
        AuthSettings.from_env(auth_env), database_url=make_database_url("authsvc"), listen="127.0.0.1:0",
        metrics_port=0, redis_url="", smtp_url=""), migrate_first=True)
    container, env = pod_env(prod, "uploadgw")
    settings = dataclasses.replace(
        GatewaySettings.from_env(env), database_url=make_database_url("uploadgw"), storage_dir=str(tmp_path),
        authsvc_target=f"127.0.0.1:{auth.port}", listen_host="127.0.0.1", metrics_port=0,
        sweep_interval_seconds=0, access_log=False)
    gateway = await start(settings, migrate_first=True, port=0)
    try:
        async with aiohttp.ClientSession() as http:
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                path = container[probe]["httpGet"]["path"]
                async with http.get(f"{gateway.url}{path}") as response:
                    assert response.status == 200, f"{probe} GET {path} -> {response.status}"
    finally:
        await gateway.stop()
        await auth.stop(grace=0)
