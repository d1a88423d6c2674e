"""Benchmark: VerifyUploadToken over loopback beside the Echo RPC, at concurrency 1 and 64.

Starts its own auth service (`python -m authsvc`, a separate process) on a temporary SQLite
database (or a fresh database on the PostgreSQL server of `--database-url`), creates a user, a
project and a token through AdminService, then measures each RPC for `--seconds` per cell and
prints calls/s, p50 and p99 with the verify/echo ratio. Targets: verify >= 0.5x echo throughput,
verify p50 < 2 ms at concurrency 1.

    python benchmarks/bench_verify.py [--seconds 2.5] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import pathlib
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import grpc

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gatehouse.auth.v1 import admin_pb2, admin_pb2_grpc, common_pb2, tokens_pb2, tokens_pb2_grpc  # noqa: E402
from gatehouse.diag.v1 import echo_pb2, echo_pb2_grpc  # noqa: E402
from gatehouse.infra.grpcserver import CREDENTIAL_HEADER  # noqa: E402
from benchmarks.throwaway import fresh_database  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_authsvc(data_dir: pathlib.Path, database_url: str, port: int, gateway: str, operator: str,
                  extra_env: dict[str, str] | None = None, name: str = "authsvc"):
    env = dict(os.environ)
    env.update({
        "AUTHSVC_DATABASE_URL": database_url,
        "AUTHSVC_LISTEN": f"127.0.0.1:{port}",
        "AUTHSVC_GATEWAY_KEY": gateway,
        "AUTHSVC_OPERATOR_KEY": operator,
        "AUTHSVC_TOKEN_SECRETS": "1:" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "AUTHSVC_TOTP_KEYS": "1:" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "AUTHSVC_EVENT_KEYS": "1:" + secrets.token_urlsafe(32),
        "AUTHSVC_RELAY_ENABLED": "false",
        "AUTHSVC_MAILBOX_DIR": str(data_dir / "mail"),
        "AUTHSVC_ARGON2_TIME_COST": "2",
        "AUTHSVC_ARGON2_MEMORY_KIB": "19456",
        "AUTHSVC_ARGON2_PARALLELISM": "1",
        "GATEHOUSE_LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    })
    log = open(data_dir / f"{name}.log", "wb")
    return subprocess.Popen([sys.executable, "-m", "authsvc"], cwd=ROOT, env=env, stdout=log, stderr=log)


async def wait_ready(channel, process, log: pathlib.Path, timeout: float = 30.0) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("authsvc exited during start-up:\n" + log.read_text(errors="replace")[-3000:])
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.aio.AioRpcError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("authsvc did not become ready:\n" + log.read_text(errors="replace")[-3000:])


async def set_up(channel, operator: str) -> str:
    """A verified user owning project 'bench-project' and an all-projects token: the token."""
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    md = ((CREDENTIAL_HEADER, operator),)
    await admin.CreateUser(admin_pb2.AdminCreateUserRequest(
        username="bench", email="bench@example.org", password="benchmark password 123", email_verified=True),
        metadata=md, timeout=30)
    await admin.AddRole(admin_pb2.AdminAddRoleRequest(project_name="bench-project", username="bench",
                                                      role=common_pb2.ROLE_OWNER, create_project=True),
                        metadata=md, timeout=10)
    minted = await admin.MintToken(admin_pb2.AdminMintTokenRequest(
        username="bench", description="benchmark", scope=common_pb2.TokenScope(all_projects=True)),
        metadata=md, timeout=10)
    return minted.token


async def measure(call, concurrency: int, seconds: float) -> dict:
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def worker():
        while True:
            started = time.perf_counter()
            if started >= stop_at:
                return
            await call()
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {"calls": len(latencies), "rate": len(latencies) / elapsed,
            "p50": statistics.median(latencies) * 1000,
            "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000}


async def prepare_calls(channel, gateway: str, operator: str) -> dict:
    """Set up the user, project and token on a ready service: {"echo": call, "verify": call},
    each warmed up (connections, caches and the pool)."""
    token = await set_up(channel, operator)
    md = ((CREDENTIAL_HEADER, gateway),)
    echo_stub = echo_pb2_grpc.EchoServiceStub(channel)
    tokens_stub = tokens_pb2_grpc.TokenServiceStub(channel)
    echo_request = echo_pb2.EchoRequest(payload=b"x" * 32)
    verify_request = tokens_pb2.VerifyUploadTokenRequest(
        token=token, project_name="bench-project",
        client=common_pb2.ClientInfo(ip_address="127.0.0.1", user_agent="bench"))

    async def echo():
        await echo_stub.Echo(echo_request, metadata=md, timeout=5)

    async def verify():
        reply = await tokens_stub.VerifyUploadToken(verify_request, metadata=md, timeout=5)
        assert reply.username == "bench"

    for call in (echo, verify):
        await measure(call, 8, 0.5)
    return {"echo": echo, "verify": verify}


async def run_service(data_dir: pathlib.Path, database_url: str, seconds: float) -> dict:
    """Start authsvc on `database_url`, measure every cell, stop it."""
    gateway, operator = "gw-" + secrets.token_urlsafe(24), "op-" + secrets.token_urlsafe(24)
    port = free_port()
    process = start_authsvc(data_dir, database_url, port, gateway, operator)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await wait_ready(channel, process, data_dir / "authsvc.log")
            calls = await prepare_calls(channel, gateway, operator)
            echo, verify = calls["echo"], calls["verify"]
            results = {}
            for concurrency in (1, 64):
                for name, call in (("echo", echo), ("verify", verify)):
                    results[(name, concurrency)] = await measure(call, concurrency, seconds)
            return results
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


async def run(args) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        data_dir = pathlib.Path(tmp)
        database_url = args.database_url or f"sqlite:///{data_dir / 'authsvc.sqlite3'}"
        async with fresh_database(database_url, "verify") as fresh:
            results = await run_service(data_dir, fresh, args.seconds)
    backend = "PostgreSQL" if database_url.startswith("postgres") else "SQLite"
    print(f"VerifyUploadToken vs Echo over loopback ({backend}, {args.seconds:g} s per cell, "
          f"{os.cpu_count()} CPUs)")
    print(f"{'rpc':<8}{'conc':>6}{'calls':>9}{'calls/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for (name, concurrency), r in results.items():
        print(f"{name:<8}{concurrency:>6}{r['calls']:>9}{r['rate']:>10.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}")
    ok = True
    for concurrency in (1, 64):
        ratio = results[("verify", concurrency)]["rate"] / results[("echo", concurrency)]["rate"]
        ok &= ratio >= 0.5
        print(f"verify/echo throughput at concurrency {concurrency}: {ratio:.2f} (target >= 0.5)")
    p50 = results[("verify", 1)]["p50"]
    ok &= p50 < 2.0
    print(f"verify p50 at concurrency 1: {p50:.2f} ms (target < 2 ms)")
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.5, help="measuring time per cell (default 2.5)")
    parser.add_argument("--database-url", default="", help="database for the auth service (default: temp SQLite)")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
