"""A Gatehouse fleet of separate processes (2 of each kind) on one PostgreSQL and one Redis; and
`BalancedFleet`, three auth services behind one DNS name and a gateway balancing over them.

`Fleet` owns every child it starts: it can SIGKILL one by name and always terminates the rest.
Each child logs to `<tmp>/logs/<name>.log`; `Fleet.tails()` quotes the ends for failure messages.
"""

from __future__ import annotations

import asyncio
import base64
import os
import pathlib
import secrets
import signal
import subprocess
import sys
import time

from gatehouse.cli.up import grpc_ready, http_ready
from gatehouse.infra.redis_embed import free_port
from tests import eventkeys
from tests.nameserver import NameServer, loopback_addresses, port_free_on

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
SERVICES = ("authsvc", "uploadgw", "auditsvc")


def _key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def fleet_env(db_urls: dict[str, str], redis_url: str, stream: str, root: pathlib.Path) -> dict[str, str]:
    """The settings every child shares (the shape of `gatehouse up`, on PostgreSQL, relays apart)."""
    return {
        "AUTHSVC_GATEWAY_KEY": _key(),
        "AUTHSVC_OPERATOR_KEY": _key(),
        "AUTHSVC_TOKEN_SECRETS": f"1:{_key()}",
        "AUTHSVC_TOTP_KEYS": f"1:{_key()}",
        "AUDITSVC_GATEWAY_KEY": _key(),
        "AUDITSVC_OPERATOR_KEY": _key(),
        "UPLOADGW_SESSION_KEY": _key(),
        "AUTHSVC_EVENT_KEYS": eventkeys.producer_env("authsvc"),
        "UPLOADGW_EVENT_KEYS": eventkeys.producer_env("uploadgw"),
        "AUDITSVC_EVENT_KEYS": eventkeys.accepted_env(),
        "GATEHOUSE_REDIS_URL": redis_url,
        "GATEHOUSE_EVENT_STREAM": stream,
        "GATEHOUSE_LOG_LEVEL": "INFO",
        "AUTHSVC_DATABASE_URL": db_urls["authsvc"],
        "UPLOADGW_DATABASE_URL": db_urls["uploadgw"],
        "AUDITSVC_DATABASE_URL": db_urls["auditsvc"],
        "AUTHSVC_RELAY_ENABLED": "false",
        "UPLOADGW_RELAY_ENABLED": "false",
        "AUTHSVC_MAILBOX_DIR": str(root / "mailbox"),
        # Cheapest allowed hashing: the test is about scale-out, not password hashing cost.
        "AUTHSVC_ARGON2_TIME_COST": "2",
        "AUTHSVC_ARGON2_MEMORY_KIB": "19456",
        "AUTHSVC_ARGON2_PARALLELISM": "1",
        "AUTHSVC_HASH_WORKERS": "1",
        # Every client of this test comes from one address; wrong passwords must not lock it out.
        "AUTHSVC_LOGIN_FAILURES_PER_IP": "1000",
        "AUTHSVC_LOGIN_FAILURES_PER_USER": "1000",
        "UPLOADGW_STORAGE_DIR": str(root / "files"),  # shared, like a ReadWriteMany volume
        # A dead consumer's pending entries are claimed by the survivor after this long.
        "AUDITSVC_CLAIM_IDLE_MS": "2000",
        "AUDITSVC_BLOCK_MS": "200",
    }


class Fleet:
    """Start, health-check, kill and stop the children of one scale-out run."""

    def __init__(self, env: dict[str, str], root: pathlib.Path):
        self.env = env
        self.root = root
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}
        self.auth_ports = [free_port(), free_port()]
        self.audit_ports = [free_port(), free_port()]
        self.http_ports = [free_port(), free_port()]
        # Like a headless Service in front of both auth replicas: the channel balances over both addresses.
        self.auth_service_target = "ipv4:" + ",".join(f"127.0.0.1:{p}" for p in self.auth_ports)

    def _child_env(self, extra: dict[str, str]) -> dict[str, str]:
        # Children run in the test's directory (no stray ./var/gatehouse.env) with the repo importable.
        path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        return {**os.environ, **self.env, "PYTHONPATH": path, **extra}

    def spawn(self, name: str, args: list[str], extra: dict[str, str]) -> None:
        out = open(self.logs / f"{name}.log", "ab")
        try:
            self.procs[name] = subprocess.Popen([sys.executable, *args], env=self._child_env(extra),
                                                cwd=self.root, stdout=out, stderr=subprocess.STDOUT)
        finally:
            out.close()

    def migrate(self) -> None:
        result = subprocess.run([sys.executable, "-m", "gatehouse.cli", "migrate"], env=self._child_env({}),
                                cwd=self.root, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"gatehouse migrate failed:\n{result.stdout}\n{result.stderr}"

    def start(self) -> None:
        for i, port in enumerate(self.auth_ports):
            self.spawn(f"authsvc-{i}", ["-m", "authsvc"], {"AUTHSVC_LISTEN": f"127.0.0.1:{port}"})
        for i, port in enumerate(self.audit_ports):
            self.spawn(f"auditsvc-{i}", ["-m", "auditsvc"], {
                "AUDITSVC_LISTEN": f"127.0.0.1:{port}", "AUDITSVC_CONSUMER_ENABLED": "true",
                "AUDITSVC_CONSUMER_NAME": f"scale-consumer-{i}"})
        for i, port in enumerate(self.http_ports):
            self.spawn(f"uploadgw-{i}", ["-m", "uploadgw"], {
                "UPLOADGW_LISTEN": f"127.0.0.1:{port}", "GATEHOUSE_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "UPLOADGW_AUTHSVC_TARGET": self.auth_service_target,
                "UPLOADGW_AUTHSVC_KEY": self.env["AUTHSVC_GATEWAY_KEY"]})
        for service in ("authsvc", "uploadgw"):
            for i in range(2):
                self.spawn(f"relay-{service}-{i}", ["-m", "gatehouse.cli", "relay", "--service", service], {})

    async def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        try:
            for port in [*self.auth_ports, *self.audit_ports]:
                await grpc_ready(f"127.0.0.1:{port}", deadline)
            for port in self.http_ports:
                await asyncio.to_thread(http_ready, f"http://127.0.0.1:{port}/_health/ready", deadline)
        except TimeoutError as exc:
            raise AssertionError(f"fleet not ready: {exc}\n{self.tails()}") from None
        self.assert_alive()

    def assert_alive(self, *names: str) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if (not names or n in names) and p.poll() is not None}
        assert not dead, f"children exited early: {dead}\n{self.tails(only=dead)}"

    def kill(self, name: str) -> None:
        """SIGKILL one child (no clean shutdown: connections drop, transactions are cut)."""
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def tails(self, lines: int = 15, only=None) -> str:
        out = []
        for path in sorted(self.logs.glob("*.log")):
            if only is not None and path.stem not in only:
                continue
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)

    def stop(self) -> None:
        alive = [p for p in self.procs.values() if p.poll() is None]
        for proc in alive:
            proc.send_signal(signal.SIGTERM)
        for proc in alive:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)



class BalancedFleet(Fleet):
    """authsvc replicas on 127.0.0.1, .2, .3 (one gRPC port, one metrics port) behind one name that
    a DNS server of the test resolves to all three, as a headless Service's name resolves to its
    pods, and one gateway whose channel resolves that name (`dns://…` through gRPC's c-ares
    resolver) and balances over them. No relays, no audit service: this fleet is about the calls."""

    NAME = "authsvc.test"

    def __init__(self, env: dict[str, str], root: pathlib.Path, replicas: int = 3):
        super().__init__(env, root)
        self.auth_addresses = loopback_addresses(replicas)
        self.auth_port = port_free_on(self.auth_addresses)
        self.metrics_port = port_free_on(self.auth_addresses)
        self.http_ports = [free_port()]
        self.nameserver = NameServer({self.NAME: self.auth_addresses})
        self.auth_service_target = self.nameserver.target(self.NAME, self.auth_port)

    def start(self) -> None:
        """The name server and the auth services; the gateway comes in `wait_ready`."""
        self.nameserver.start()
        for i, address in enumerate(self.auth_addresses):
            self.spawn(f"authsvc-{i}", ["-m", "authsvc"], {
                "AUTHSVC_LISTEN": f"{address}:{self.auth_port}", "AUTHSVC_METRICS_PORT": str(self.metrics_port)})

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Every auth service answering, then the gateway started and ready. Started together, the
        gateway's channel met replicas not yet listening: those waited out gRPC's reconnect backoff
        (a second or more), and the first upload's streams, opened at once, all went to the replica
        that was connected (a CI run saw all 120 checks on one)."""
        deadline = time.monotonic() + timeout
        try:
            for address in self.auth_addresses:
                await grpc_ready(f"{address}:{self.auth_port}", deadline)
            self.spawn("uploadgw-0", ["-m", "uploadgw"], {
                "UPLOADGW_LISTEN": f"127.0.0.1:{self.http_ports[0]}",
                "GATEHOUSE_PUBLIC_URL": f"http://127.0.0.1:{self.http_ports[0]}",
                "UPLOADGW_AUTHSVC_TARGET": self.auth_service_target, "GRPC_DNS_RESOLVER": "ares",
                "UPLOADGW_AUTHSVC_KEY": self.env["AUTHSVC_GATEWAY_KEY"]})
            await asyncio.to_thread(http_ready, f"http://127.0.0.1:{self.http_ports[0]}/_health/ready", deadline)
        except TimeoutError as exc:
            raise AssertionError(f"fleet not ready: {exc}\n{self.tails()}") from None
        self.assert_alive()

    def metrics_url(self, replica: int) -> str:
        return f"http://{self.auth_addresses[replica]}:{self.metrics_port}/metrics"

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self.nameserver.close()
