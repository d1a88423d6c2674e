"""The probes the manifests declare get the answers they expect from the real services.

Each service starts from the environment its pod gets in the prod overlay (only the database,
the listen addresses and the metrics port are made local; the TLS Secrets its pod mounts are files
from a test CA at the same place), and is probed the way the kubelet probes it: a plaintext gRPC
health check without any credential, or an HTTP GET on the declared path.
"""

from __future__ import annotations

import dataclasses
import pathlib

import aiohttp
import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gatehouse.infra.redis_embed import free_port
from tests.deploy.manifests import Manifests
from tests.tlsfiles import Identity

CA = trustme.CA()


def pod_env(manifests: Manifests, name: str, mounts: pathlib.Path | None = None) -> tuple[dict, dict[str, str]]:
    """The container and its environment; with `mounts`, each Secret volume `gatehouse-tls-X` the
    pod mounts is a directory of files for X from one test CA, and the variables point there."""
    workload = manifests.workload(name)
    (container,) = workload.pod["containers"]
    env = manifests.environment(container)
    if mounts is not None:
        volumes = {v["name"]: v for v in workload.pod.get("volumes") or []}
        for mount in container.get("volumeMounts") or []:
            secret = volumes[mount["name"]].get("secret", {}).get("secretName", "")
            if secret.startswith("gatehouse-tls-"):
                files = Identity(mounts / secret)
                if not (files.dir / "tls.crt").exists():
                    files.write(CA, secret.removeprefix("gatehouse-tls-"), "127.0.0.1")
                env = {k: v.replace(mount["mountPath"], str(files.dir)) for k, v in env.items()}
    return container, env


def local_listen(address: str) -> str:
    """A pod's listen address made a free loopback one ("" stays "")."""
    return f"127.0.0.1:{free_port()}" if address else ""


async def kubelet_grpc_check(port: int, service: str = "") -> int:
    """What `grpc: {port: …}` does: Health/Check on the pod's port, no metadata at all."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5)
    return reply.status


@pytest.mark.timeout(120)
async def test_the_grpc_services_answer_the_kubelets_health_probe(rendered, make_database_url, tmp_path):
    from auditsvc.server import create_server as create_audit
    from auditsvc.settings import Settings as AuditSettings
    from authsvc.server import create_server as create_auth
    from authsvc.settings import Settings as AuthSettings

    prod = rendered["prod"]
    auth_settings = AuthSettings.from_env(pod_env(prod, "authsvc", tmp_path / "tls")[1])
    auth_settings = dataclasses.replace(auth_settings, health_listen=local_listen(auth_settings.health_listen))
    auth = await create_auth(dataclasses.replace(
        auth_settings, database_url=make_database_url("authsvc"), listen="127.0.0.1:0", metrics_port=0,
        redis_url="", smtp_url=""), migrate_first=True)
    audit_settings = AuditSettings.from_env(pod_env(prod, "auditsvc", tmp_path / "tls")[1])
    audit_settings = dataclasses.replace(audit_settings, health_listen=local_listen(audit_settings.health_listen))
    audit = await create_audit(dataclasses.replace(
        audit_settings, database_url=make_database_url("auditsvc"), listen="127.0.0.1:0", metrics_port=0,
        redis_url=""), migrate_first=True)
    try:
        for running, name, health_listen in ((auth, "authsvc", auth_settings.health_listen),
                                             (audit, "auditsvc", audit_settings.health_listen)):
            container, _ = pod_env(prod, name)
            assert {container[p]["grpc"].get("service", "") for p in ("readinessProbe", "livenessProbe")} == {""}
            # Under TLS the probes go to the plaintext health port (tests/deploy/test_manifests.py
            # checks that the manifests probe that port).
            port = int(health_listen.rsplit(":", 1)[1]) if health_listen else running.port
            assert await kubelet_grpc_check(port) == health_pb2.HealthCheckResponse.SERVING, name
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
    _, auth_env = pod_env(prod, "authsvc", tmp_path / "tls")
    auth = await create_auth(dataclasses.replace(
        AuthSettings.from_env(auth_env), database_url=make_database_url("authsvc"), listen="127.0.0.1:0",
        metrics_port=0, redis_url="", smtp_url="", health_listen=""), migrate_first=True)
    container, env = pod_env(prod, "uploadgw", tmp_path / "tls")
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
