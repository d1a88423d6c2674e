"""Benchmark: a burst of 100 concurrent password logins against a real auth service process.

Standalone: starts `python -m authsvc` as a child process on loopback (its own SQLite database in a
temporary directory, or a fresh database on the PostgreSQL server named by --database-url, dropped
afterwards), creates one account through the operator API, then sends the burst: 100 Login calls
at once, each with the right password and a 30 s deadline. It samples the service's resident
memory (/proc/<pid>/status, every 5 ms) and its thread count while the burst runs.

Measured twice in the same run, with the same argon2 parameters (the production defaults unless
given) and the same two hashing workers: with a bounded queue (AUTHSVC_HASH_QUEUE, 16 by default)
and, as the baseline, with an unbounded one (a queue of 1,000,000: every caller waits its turn,
as before admission control). Printed per run: answers (ok / refused), the time to the first
refusal, to the last answer, the slowest successful login, peak RSS and its growth over the
service's RSS before the burst, and peak threads.

The floor, measured on each service before its burst: the same number of Login calls without a
password, refused before any work: the time the transport alone needs to answer such a burst.

Targets: the first refusal before the first successful login ("at once": a refused caller waits
for no hash; how much later than the floor it comes grows with the queue, whose admitted logins'
lookups share the event loop); the slowest successful login at most half the baseline's; RSS
growth no larger than the baseline's (x1.1).

    python benchmarks/bench_login_burst.py [--calls 100] [--queue 16] [--workers 2]
        [--time-cost 3] [--memory-kib 65536] [--parallelism 4] [--database-url postgresql://…]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import pathlib
import secrets
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from benchmarks.throwaway import fresh_database  # noqa: E402
from gatehouse.auth.v1 import accounts_pb2, accounts_pb2_grpc, admin_pb2, admin_pb2_grpc, common_pb2  # noqa: E402
from gatehouse.infra.grpcserver import open_channel  # noqa: E402
from gatehouse.infra.redis_embed import free_port  # noqa: E402

PASSWORD = "correct horse battery staple"
BASELINE_QUEUE = 1_000_000


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS (KiB) and Threads of a process."""
    out = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "Threads"):
                out[key] = int(value.split()[0])
    return out


def start_authsvc(database_url: str, port: int, *, queue: int, args) -> tuple[subprocess.Popen, dict]:
    keys = {"gateway": secrets.token_urlsafe(16), "operator": secrets.token_urlsafe(16)}
    env = {
        **os.environ,
        "AUTHSVC_DATABASE_URL": database_url,
        "AUTHSVC_LISTEN": f"127.0.0.1:{port}",
        "AUTHSVC_GATEWAY_KEY": keys["gateway"],
        "AUTHSVC_OPERATOR_KEY": keys["operator"],
        "AUTHSVC_TOKEN_SECRETS": "1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "AUTHSVC_TOTP_KEYS": "1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "AUTHSVC_RELAY_ENABLED": "false",
        "AUTHSVC_HASH_WORKERS": str(args.workers),
        "AUTHSVC_HASH_QUEUE": str(queue),
        # The burst is 100 right passwords for one account: the login limits (attempts are counted
        # while in flight) are set out of the way, so that what refuses here is the hashing queue.
        "AUTHSVC_LOGIN_FAILURES_PER_USER": "1000000",
        "AUTHSVC_LOGIN_FAILURES_PER_IP": "1000000",
        "AUTHSVC_LOGIN_FAILURES_PER_DAY": "1000000",
        "AUTHSVC_ARGON2_TIME_COST": str(args.time_cost),
        "AUTHSVC_ARGON2_MEMORY_KIB": str(args.memory_kib),
        "AUTHSVC_ARGON2_PARALLELISM": str(args.parallelism),
        "GATEHOUSE_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    process = subprocess.Popen([sys.executable, "-m", "authsvc"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return process, keys


async def wait_ready(target: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"authsvc exited: {process.stderr.read().decode(errors='replace')[-2000:]}")
        async with grpc.aio.insecure_channel(target) as channel:
            try:
                await asyncio.wait_for(channel.channel_ready(), 0.5)
                return
            except asyncio.TimeoutError:
                pass
    raise SystemExit("authsvc did not start in time")


async def burst(database_url: str, queue: int, args) -> dict:
    port = free_port()
    process, keys = start_authsvc(database_url, port, queue=queue, args=args)
    target = f"127.0.0.1:{port}"
    try:
        await wait_ready(target, process)
        async with open_channel(target, keys["operator"]) as operator, open_channel(target, keys["gateway"]) as gw:
            await admin_pb2_grpc.AdminServiceStub(operator).CreateUser(admin_pb2.AdminCreateUserRequest(
                username="burst", email="burst@example.org", password=PASSWORD, email_verified=True), timeout=30)
            accounts = accounts_pb2_grpc.AccountServiceStub(gw)
            # Warm: as many concurrent logins as the bounded queue admits (the database pool opens
            # its connections, the service learns what a hash costs here).
            await asyncio.gather(*(accounts.Login(accounts_pb2.LoginRequest(
                username="burst", password=PASSWORD, client=common_pb2.ClientInfo(ip_address=f"203.0.113.{i}")),
                timeout=60) for i in range(args.workers + args.queue)))
            # The floor: the same burst of calls refused before any work (no password), the time
            # the transport alone takes to answer them.
            floor_started = time.perf_counter()

            async def empty(i: int) -> float:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await accounts.Login(accounts_pb2.LoginRequest(username=f"floor{i}", password=""), timeout=30)
                return time.perf_counter() - floor_started

            floor = await asyncio.gather(*(empty(i) for i in range(args.calls)))
            await asyncio.sleep(0.5)
            before = proc_status(process.pid)
            samples: list[dict[str, int]] = []
            done = asyncio.Event()

            async def sample() -> None:
                while not done.is_set():
                    samples.append(proc_status(process.pid))
                    await asyncio.sleep(0.005)

            sampler = asyncio.create_task(sample())
            started = time.perf_counter()

            async def one(i: int):
                request = accounts_pb2.LoginRequest(username="burst", password=PASSWORD, client=common_pb2.ClientInfo(
                    ip_address=f"198.51.{i // 250}.{i % 250}", user_agent="bench"))
                try:
                    await accounts.Login(request, timeout=30)
                    return "ok", time.perf_counter() - started
                except grpc.aio.AioRpcError as err:
                    return err.code().name, time.perf_counter() - started

            results = await asyncio.gather(*(one(i) for i in range(args.calls)))
            done.set()
            await sampler
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    ok = [t for code, t in results if code == "ok"]
    refused = [t for code, t in results if code == "RESOURCE_EXHAUSTED"]
    other = sorted({code for code, _ in results if code not in ("ok", "RESOURCE_EXHAUSTED")})
    peak_rss = max(s["VmRSS"] for s in samples + [before])
    return {
        "queue": queue, "ok": len(ok), "refused": len(refused), "other": other,
        "first_refusal_s": min(refused) if refused else None,
        "last_answer_s": max(t for _, t in results),
        "slowest_ok_s": max(ok) if ok else None, "first_ok_s": min(ok) if ok else None,
        "rss_before_mib": before["VmRSS"] / 1024, "rss_peak_mib": peak_rss / 1024,
        "rss_growth_mib": (peak_rss - before["VmRSS"]) / 1024,
        "threads_peak": max(s["Threads"] for s in samples + [before]),
        "floor_first_s": min(floor), "floor_last_s": max(floor),
    }


def fmt(value, unit="", scale=1.0, digits=0) -> str:
    return "—" if value is None else f"{value * scale:.{digits}f}{unit}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--queue", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--time-cost", type=int, default=3)
    parser.add_argument("--memory-kib", type=int, default=65536)
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    async def runs(url: str) -> list[dict]:
        out = []
        for label, queue in (("bounded", args.queue), ("baseline", BASELINE_QUEUE)):
            async with fresh_database(url, f"burst{label}") as fresh:
                out.append(await burst(fresh, queue, args))
        return out

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench-burst.sqlite3"
        if not args.database_url:
            bounded_url, baseline_url = f"sqlite:///{tmp}/bounded.sqlite3", f"sqlite:///{tmp}/baseline.sqlite3"

            async def sqlite_runs() -> list[dict]:
                return [await burst(bounded_url, args.queue, args), await burst(baseline_url, BASELINE_QUEUE, args)]

            bounded, baseline = asyncio.run(sqlite_runs())
        else:
            bounded, baseline = asyncio.run(runs(url))
    backend = url.split(":", 1)[0]
    print(f"login burst: {args.calls} concurrent Login calls, {args.workers} hashing workers, argon2id "
          f"t={args.time_cost} m={args.memory_kib} KiB p={args.parallelism}, {backend}")
    header = (f"  {'queue':<18}{'ok':>5}{'refused':>9}{'1st refusal':>13}{'last answer':>13}{'slowest ok':>12}"
              f"{'RSS before':>12}{'RSS peak':>10}{'growth':>9}{'threads':>9}")
    print(header)
    for label, r in (("bounded", bounded), ("unbounded (base)", baseline)):
        name = f"{r['queue']}" if label == "bounded" else "unbounded (base)"
        print(f"  {name:<18}{r['ok']:>5}{r['refused']:>9}{fmt(r['first_refusal_s'], ' ms', 1000):>13}"
              f"{fmt(r['last_answer_s'], ' s', 1, 2):>13}{fmt(r['slowest_ok_s'], ' s', 1, 2):>12}"
              f"{r['rss_before_mib']:>8.0f} MiB{r['rss_peak_mib']:>6.0f} MiB{r['rss_growth_mib']:>5.0f} MiB"
              f"{r['threads_peak']:>9}" + (f"  other: {r['other']}" if r["other"] else ""))
    slowest_ratio = (bounded["slowest_ok_s"] / baseline["slowest_ok_s"]
                     if bounded["slowest_ok_s"] and baseline["slowest_ok_s"] else None)
    rss_ratio = (bounded["rss_growth_mib"] / baseline["rss_growth_mib"]) if baseline["rss_growth_mib"] > 0 else None
    print(f"  slowest ok login: {fmt(slowest_ratio, 'x', 1, 2)} of the baseline's; "
          f"RSS growth: {fmt(rss_ratio, 'x', 1, 2)} of the baseline's")
    floor = min(bounded["floor_last_s"], baseline["floor_last_s"])
    refusal_ratio = bounded["first_refusal_s"] / floor if bounded["first_refusal_s"] else None
    print(f"  transport floor ({args.calls} logins without a password, refused before any work): first answer "
          f"{bounded['floor_first_s'] * 1000:.0f} ms, last {floor * 1000:.0f} ms; first refusal: "
          f"{fmt(refusal_ratio, 'x', 1, 2)} of the floor's last answer")
    print(f"  first successful login: {fmt(bounded['first_ok_s'], ' ms', 1000)} (bounded), "
          f"{fmt(baseline['first_ok_s'], ' ms', 1000)} (baseline)")
    met = (bounded["first_refusal_s"] is not None and bounded["first_ok_s"] is not None
           and bounded["first_refusal_s"] < bounded["first_ok_s"]
           and slowest_ratio is not None and slowest_ratio <= 0.5
           and bounded["rss_growth_mib"] <= max(1.1 * baseline["rss_growth_mib"], baseline["rss_growth_mib"] + 8))
    print(json.dumps({"first_refusal_ms": fmt(bounded["first_refusal_s"], "", 1000, 1),
                      "first_refusal_vs_floor": refusal_ratio,
                      "slowest_ok_ratio": slowest_ratio, "rss_growth_ratio": rss_ratio,
                      "targets": {"first_refusal_before_first_ok": True, "slowest_ok_ratio": 0.5,
                                  "rss_growth_ratio": 1.1},
                      "met": met}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
