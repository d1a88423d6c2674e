#!/usr/bin/env python3
"""Upload benchmark: the Gatehouse gateway against pypiserver and devpi-server (+ devpi-tokens).

Standalone: starts authsvc and the gateway (temporary SQLite and file store) as processes, mints
an API token, and - in the same run - starts pypiserver (htpasswd upload auth) and devpi-server
(devpi-tokens macaroon) from a throwaway venv under /tmp (created with pip when missing; never a
project dependency). Every target gets the same workload through twine's own upload API,
in-process:

  small   N small wheels of N new projects, and N new versions of one project: median per upload
          (all targets run at once and take turns in ROUNDS slices, so drift hits them alike)
  big     one wheel of BIG MiB: upload seconds
  rss     the gateway's peak RSS growth during a RSS_GIB GiB upload (VmHWM after clear_refs=5)
  page    a project with PAGE files: p50 of GET /simple/<project>/ (pip's Accept header)

The floor twine itself sets is measured in the same run: a null server (nullserver.py: reads each
whole request, answers 200) takes its turns in the small and big phases like any target. Then a
table with each figure's ratio to the best peer, each target's ratio to the null server, and the
targets.

  python benchmarks/bench_upload.py [--small 200] [--rounds 4] [--big-mib 100] [--rss-gib 1] [--page-files 1000]
                                    [--s3]

With --s3 the gateway keeps its files in a bucket of moto's S3 server (the test extra's, started
on loopback as the object-store tests start it: tests/s3server.py) instead of the local store.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS_VENV = "/tmp/gatehouse-bench-peers/venv"
PEER_PACKAGES = ["pypiserver==2.*", "passlib==1.7.4", "bcrypt<4.1", "devpi-server", "devpi-client",
                 "devpi-tokens[client]"]
PIP_ACCEPT = ("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
              "text/html; q=0.01")


# -- distributions -------------------------------------------------------------------------------------
def write_wheel(outdir: str, name: str, version: str, payload_mib: float = 0, chunk_mib: int = 64) -> str:
    dist = name.replace("-", "_")
    distinfo = f"{dist}-{version}.dist-info"
    meta = (f"Metadata-Version: 2.4\nName: {name}\nVersion: {version}\nSummary: benchmark wheel\n"
            "License-Expression: MIT\nRequires-Python: >=3.8\n\nA benchmark wheel.\n").encode()
    path = os.path.join(outdir, f"{dist}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{dist}/__init__.py", f'__version__ = "{version}"\n')
        if payload_mib:
            info = zipfile.ZipInfo(f"{dist}/payload.bin", date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            remaining = int(payload_mib * 1024 * 1024)
            with zf.open(info, "w", force_zip64=True) as fp:
                block = os.urandom(min(remaining, chunk_mib * 1024 * 1024))
                while remaining > 0:
                    piece = block[:remaining]
                    fp.write(piece)
                    remaining -= len(piece)
        zf.writestr(f"{distinfo}/METADATA", meta)
        zf.writestr(f"{distinfo}/WHEEL", "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\n"
                                         "Tag: py3-none-any\n")
        zf.writestr(f"{distinfo}/RECORD", "")
    return path


# -- processes -------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open within {timeout}s")


class Processes:
    """Processes this benchmark started; only these are ever signalled."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def start(self, cmd, *, env=None, log=None) -> subprocess.Popen:
        out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)


# -- memory --------------------------------------------------------------------------------------------
def reset_peak(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def mem_kib(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmHWM:", "VmRSS:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    return out


# -- targets -------------------------------------------------------------------------------------------
class Target:
    name = "?"
    pid = 0
    upload_url = simple_url = user = password = ""
    notes = ""

    def start(self, work: str, procs: Processes) -> None:
        raise NotImplementedError


class Gateway(Target):
    name = "gatehouse"
    extra_env: dict[str, str] = {}
    gateway_env: dict[str, str] = {}
    auth_env: dict[str, str] = {}  # extra environment for authsvc (bench_oidc.py: the OIDC issuer)

    def start(self, work: str, procs: Processes) -> None:
        auth_port, gw_port = free_port(), free_port()
        gateway_key, operator_key = "gw-" + secrets.token_urlsafe(24), "op-" + secrets.token_urlsafe(24)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHSVC_", "UPLOADGW_"))}
        base.update(PYTHONPATH=ROOT, GATEHOUSE_LOG_LEVEL="INFO")
        auth_env = dict(base, AUTHSVC_DATABASE_URL=f"sqlite:///{work}/authsvc.sqlite3",
                        AUTHSVC_LISTEN=f"127.0.0.1:{auth_port}", AUTHSVC_GATEWAY_KEY=gateway_key,
                        AUTHSVC_OPERATOR_KEY=operator_key, AUTHSVC_RELAY_ENABLED="false",
                        AUTHSVC_TOKEN_SECRETS="1:" + secrets.token_hex(32),
                        AUTHSVC_TOTP_KEYS="1:" + secrets.token_hex(32),
                        AUTHSVC_EVENT_KEYS="1:" + secrets.token_hex(32),
                        AUTHSVC_MAILBOX_DIR=f"{work}/mail", **self.auth_env)
        procs.start([sys.executable, "-m", "authsvc"], env=auth_env, log=f"{work}/authsvc.log")
        wait_port(auth_port)
        self.auth_target, self.operator_key = f"127.0.0.1:{auth_port}", operator_key
        self.password = mint_token(f"127.0.0.1:{auth_port}", operator_key)
        gw_env = dict(base, UPLOADGW_DATABASE_URL=f"sqlite:///{work}/uploadgw.sqlite3",
                      UPLOADGW_STORAGE_DIR=f"{work}/store", UPLOADGW_AUTHSVC_TARGET=f"127.0.0.1:{auth_port}",
                      UPLOADGW_AUTHSVC_KEY=gateway_key, UPLOADGW_LISTEN=f"127.0.0.1:{gw_port}",
                      UPLOADGW_MAX_FILE_SIZE=str(4 * 1024 ** 3), UPLOADGW_MAX_PROJECT_SIZE=str(64 * 1024 ** 3),
                      UPLOADGW_ACCESS_LOG="true", UPLOADGW_EVENT_KEYS="1:" + secrets.token_hex(32))
        gw_env.update(self.extra_env)  # may replace any of the above
        self.gateway_env = gw_env
        self.pid = self.start_gateway(work, procs, gw_port)
        self.url = f"http://127.0.0.1:{gw_port}"
        self.upload_url = f"http://127.0.0.1:{gw_port}/legacy/"
        self.simple_url = f"http://127.0.0.1:{gw_port}/simple/"
        self.user = "__token__"
        store = "an S3 bucket" if self.extra_env.get("UPLOADGW_STORAGE_BACKEND") == "s3" else "local file store"
        self.notes = (f"authsvc + uploadgw processes, SQLite, {store}, API token"
                      + (f" ({', '.join(f'{k}={v}' for k, v in self.extra_env.items())})" if self.extra_env else ""))

    def start_gateway(self, work: str, procs: Processes, port: int, **overrides: str) -> int:
        """A gateway process on `port` with this target's settings and `overrides` (a second replica
        shares the database and the file store); returns its pid once it answers."""
        env = dict(self.gateway_env, UPLOADGW_LISTEN=f"127.0.0.1:{port}", **overrides)
        proc = procs.start([sys.executable, "-m", "uploadgw"], env=env, log=f"{work}/uploadgw-{port}.log")
        wait_http(f"http://127.0.0.1:{port}/healthz")
        return proc.pid


def start_bucket(work: str, procs: Processes) -> dict[str, str]:
    """moto's S3 server on loopback with an empty bucket: the gateway's environment for it."""
    import asyncio

    sys.path.insert(0, ROOT)
    from tests.s3server import MotoServer

    server = MotoServer.start(f"{work}/moto.log")
    procs.procs.append(server.process)
    bucket = asyncio.run(server.new_bucket())
    return {"UPLOADGW_STORAGE_BACKEND": "s3", "UPLOADGW_S3_BUCKET": bucket.bucket,
            "UPLOADGW_S3_ENDPOINT_URL": bucket.endpoint_url, "UPLOADGW_S3_PATH_STYLE": "true",
            "UPLOADGW_S3_ACCESS_KEY_ID": bucket.access_key_id, "UPLOADGW_S3_SECRET_ACCESS_KEY": bucket.secret_access_key}


def mint_token(target: str, operator_key: str) -> str:
    import asyncio

    from gatehouse.auth.v1 import admin_pb2, admin_pb2_grpc, common_pb2
    from gatehouse.infra.grpcserver import open_channel

    async def mint() -> str:
        async with open_channel(target, operator_key, default_timeout=30) as channel:
            admin = admin_pb2_grpc.AdminServiceStub(channel)
            await admin.CreateUser(admin_pb2.AdminCreateUserRequest(
                username="bench", email="bench@example.org", password="bench password 1234",
                email_verified=True))
            reply = await admin.MintToken(admin_pb2.AdminMintTokenRequest(
                username="bench", description="bench", scope=common_pb2.TokenScope(all_projects=True)))
            return reply.token

    return asyncio.run(mint())


class NullServer(Target):
    name = "null"

    def start(self, work: str, procs: Processes) -> None:
        port = free_port()
        proc = procs.start([sys.executable, os.path.join(ROOT, "benchmarks", "nullserver.py"), str(port)],
                           log=f"{work}/nullserver.log")
        wait_http(f"http://127.0.0.1:{port}/")
        self.pid = proc.pid
        self.upload_url = f"http://127.0.0.1:{port}/"
        self.user, self.password = "null", "null"
        self.notes = "reads each whole request, answers 200 (the floor twine and loopback set)"


class PyPIServer(Target):
    name = "pypiserver"

    def start(self, work: str, procs: Processes) -> None:
        port = free_port()
        packages = os.path.join(work, "packages")
        os.makedirs(packages)
        htpasswd = os.path.join(work, "htpasswd")
        self.user, self.password = "bench", "bench-password-1"
        subprocess.run([os.path.join(PEERS_VENV, "bin", "python"), "-c",
                        "import sys; from passlib.apache import HtpasswdFile as H; "
                        "h = H(sys.argv[1], new=True); h.set_password(sys.argv[2], sys.argv[3]); h.save()",
                        htpasswd, self.user, self.password], check=True)
        proc = procs.start([os.path.join(PEERS_VENV, "bin", "pypi-server"), "run", "-p", str(port), "-i",
                            "127.0.0.1", "-a", "update", "-P", htpasswd, "--disable-fallback", packages],
                           log=f"{work}/pypiserver.log")
        wait_http(f"http://127.0.0.1:{port}/simple/")
        self.pid = proc.pid
        self.packages = packages
        self.upload_url = f"http://127.0.0.1:{port}/"
        self.simple_url = f"http://127.0.0.1:{port}/simple/"
        self.notes = "htpasswd (apr_md5_crypt), default server"


class Devpi(Target):
    name = "devpi-tokens"

    def start(self, work: str, procs: Processes) -> None:
        port = free_port()
        server_dir, client_dir = os.path.join(work, "server"), os.path.join(work, "client")
        env = dict(os.environ, DEVPISERVER_SERVERDIR=server_dir)
        binary = lambda name: os.path.join(PEERS_VENV, "bin", name)  # noqa: E731
        subprocess.run([binary("devpi-init"), "--serverdir", server_dir, "--no-root-pypi", "--root-passwd",
                        "root-password-1"], env=env, check=True, capture_output=True)
        proc = procs.start([binary("devpi-server"), "--serverdir", server_dir, "--host", "127.0.0.1", "--port",
                            str(port), "--offline-mode"], env=env, log=f"{work}/devpi.log")
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/+api")
        devpi = [binary("devpi"), "--clientdir", client_dir]

        def run(*args):
            return subprocess.run(devpi + list(args), check=True, capture_output=True, text=True).stdout

        run("use", base)
        run("login", "root", "--password", "root-password-1")
        run("user", "-c", "bench", "password=bench-password-1", "email=bench@example.invalid")
        run("login", "bench", "--password", "bench-password-1")
        run("index", "-c", "dev", "bases=", "volatile=False")
        token = run("token-create", "-e", "1 day", "-a", "upload", "-i", "bench/dev").strip().splitlines()[-1]
        self.pid = proc.pid
        self.user, self.password = "bench", token.strip()
        self.upload_url = f"{base}/bench/dev/"
        self.simple_url = f"{base}/bench/dev/+simple/"
        self.notes = "devpi-server --offline-mode, non-volatile index, devpi-tokens macaroon"


# -- measurements --------------------------------------------------------------------------------------
def twine_settings(target: Target):
    from twine.settings import Settings

    return Settings(repository_url=target.upload_url, username=target.user, password=target.password,
                    non_interactive=True, disable_progress_bar=True)


def upload(settings, path: str) -> float:
    from twine.commands.upload import upload as twine_upload

    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        twine_upload(settings, [path])
    return time.perf_counter() - started


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]


def interleaved(targets: list[Target], paths: list[str], rounds: int) -> dict[str, list[float]]:
    """Upload `paths` to every target in `rounds` slices, taking turns slice by slice (the first
    to go rotates), so that a machine whose speed drifts during the run weighs on all alike."""
    settings = {t.name: twine_settings(t) for t in targets}
    times: dict[str, list[float]] = {t.name: [] for t in targets}
    size = -(-len(paths) // rounds)
    for r in range(rounds):
        turn = targets[r % len(targets):] + targets[:r % len(targets)]
        for target in turn:
            times[target.name] += [upload(settings[target.name], path) for path in paths[r * size:(r + 1) * size]]
    return times


def measure_small(targets: list[Target], dists: dict, args) -> dict[str, dict]:
    """The small-upload phases, interleaved across the targets."""
    out: dict[str, dict] = {t.name: {"notes": t.notes} for t in targets}
    for name, times in interleaved(targets, dists["small"], args.rounds).items():
        out[name]["small_p50_ms"] = statistics.median(times) * 1000
        out[name]["small_p90_ms"] = percentile(times, 0.9) * 1000
    if dists.get("small_same"):
        for name, times in interleaved(targets, dists["small_same"], args.rounds).items():
            out[name]["same_p50_ms"] = statistics.median(times) * 1000
    return out


def measure(target: Target, dists: dict, args, work: str) -> dict:
    """The single-target phases: the big upload, the gateway's memory, the simple page."""
    settings = twine_settings(target)
    result: dict = {}
    if dists.get("big"):
        result["big_s"] = upload(settings, dists["big"])
    if dists.get("rss") and isinstance(target, Gateway):
        reset_peak(target.pid)
        before = mem_kib(target.pid)
        result["rss_upload_s"] = upload(settings, dists["rss"])
        after = mem_kib(target.pid)
        result["rss_growth_mib"] = (after["VmHWM"] - before["VmRSS"]) / 1024
        result["rss_before_mib"] = before["VmRSS"] / 1024
    if dists.get("page"):
        started = time.perf_counter()
        if isinstance(target, PyPIServer):
            # pypiserver serves its directory: copying the files in is what an upload does there.
            for path in dists["page"]:
                shutil.copy(path, target.packages)
        else:
            for path in dists["page"]:
                upload(settings, path)
                if time.perf_counter() - started > args.page_budget_s:
                    result["page_note"] = f"stopped populating after {args.page_budget_s}s"
                    break
        result["page_populate_s"] = time.perf_counter() - started
        url = target.simple_url + "bench-page/"
        with requests.Session() as session:
            first = session.get(url, headers={"Accept": PIP_ACCEPT})
            first.raise_for_status()
            result["page_bytes"] = len(first.content)
            result["page_type"] = first.headers.get("Content-Type", "").split(";")[0]
            samples = []
            for _ in range(args.page_requests):
                started = time.perf_counter()
                response = session.get(url, headers={"Accept": PIP_ACCEPT})
                response.raise_for_status()
                _ = response.content
                samples.append(time.perf_counter() - started)
        result["page_p50_ms"] = statistics.median(samples) * 1000
        result["page_files_seen"] = (len(first.json()["files"]) if "json" in result["page_type"]
                                     else first.text.count("<a "))
    return result


def ensure_peers() -> str | None:
    """The throwaway peers venv (created if missing); None with a reason printed when impossible."""
    bins = [os.path.join(PEERS_VENV, "bin", b) for b in ("pypi-server", "devpi-server", "devpi", "devpi-init")]
    if all(os.path.exists(b) for b in bins):
        return PEERS_VENV
    try:
        if not os.path.exists(os.path.join(PEERS_VENV, "bin", "python")):
            subprocess.run([shutil.which("python3.11") or sys.executable, "-m", "venv", PEERS_VENV], check=True)
        subprocess.run([os.path.join(PEERS_VENV, "bin", "pip"), "install", "-q", *PEER_PACKAGES], check=True,
                       timeout=900)
        return PEERS_VENV
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"!! could not install the peers in {PEERS_VENV}: {exc}")
        return None


# -- report ---------------------------------------------------------------------------------------------
ROWS = [("small upload p50, new projects (ms)", "small_p50_ms", "min"),
            ("small upload p90, new projects (ms)", "small_p90_ms", "min"),
            ("small upload p50, one project (ms)", "same_p50_ms", "min"),
            ("100 MiB upload (s)", "big_s", "min"), ("simple page p50 (ms)", "page_p50_ms", "min"),
        ("RSS growth, big upload (MiB)", "rss_growth_mib", "min")]


def table(results: dict[str, dict], gateway: str = "gatehouse", floor: str = NullServer.name) -> str:
    rows = ROWS
    names = list(results)
    header = "| metric | " + " | ".join(names) + " | gateway / best peer |"
    lines = [header, "|" + "---|" * (len(names) + 2)]
    for label, key, _ in rows:
        values = {n: results[n].get(key) for n in names}
        if all(v is None for v in values.values()):
            continue
        peers = [v for n, v in values.items() if n not in (gateway, floor) and v is not None]
        best = min(peers) if peers else None
        ratio = f"{values[gateway] / best:.2f}x" if best and values.get(gateway) is not None else "n/a"
        cells = [f"{v:.2f}" if isinstance(v, float) else ("-" if v is None else str(v)) for v in values.values()]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines)


def floor_table(results: dict[str, dict], floor: str = NullServer.name) -> str:
    """Each target's figures as a ratio to the null server's, for the rows the null server has."""
    if floor not in results:
        return "(no null-server floor measured)"
    names = [n for n in results if n != floor]
    lines = ["| ratio to the null server | " + " | ".join(names) + f" | {floor} itself |",
             "|" + "---|" * (len(names) + 2)]
    for label, key, _ in ROWS:
        base = results[floor].get(key)
        if not base:
            continue
        cells = [f"{results[n][key] / base:.2f}x" if results[n].get(key) is not None else "-" for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {base:.2f} |")
    return "\n".join(lines)


def verdict(results: dict[str, dict]) -> list[str]:
    gw = results["gatehouse"]
    peers = {n: r for n, r in results.items() if n not in ("gatehouse", NullServer.name)}
    out = []

    def best(key):
        values = [r[key] for r in peers.values() if r.get(key) is not None]
        return min(values) if values else None

    checks = [("median per-upload <= best peer (new projects)", gw.get("small_p50_ms"), best("small_p50_ms"), 1.0),
              ("median per-upload <= best peer (one project)", gw.get("same_p50_ms"), best("same_p50_ms"), 1.0),
              ("100 MiB upload <= 1.1x best peer", gw.get("big_s"), best("big_s"), 1.1)]
    for label, mine, theirs, factor in checks:
        if mine is None or theirs is None:
            out.append(f"- {label}: not measured")
        else:
            out.append(f"- {label}: {'MET' if mine <= theirs * factor else 'MISSED'} "
                       f"({mine:.2f} vs {theirs:.2f}, {mine / theirs:.2f}x)")
    if gw.get("rss_growth_mib") is not None:
        out.append(f"- RSS growth < 50 MiB during a {gw.get('rss_gib', 1)} GiB upload: "
                   f"{'MET' if gw['rss_growth_mib'] < 50 else 'MISSED'} ({gw['rss_growth_mib']:.1f} MiB)")
    if gw.get("page_p50_ms") is not None:
        out.append(f"- simple page of {gw.get('page_files_seen')} files p50 < 20 ms: "
                   f"{'MET' if gw['page_p50_ms'] < 20 else 'MISSED'} ({gw['page_p50_ms']:.2f} ms)")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=200, help="small wheels, each of a new project")
    ap.add_argument("--small-same", type=int, default=200, help="small wheels, new versions of one project")
    ap.add_argument("--big-mib", type=int, default=100)
    ap.add_argument("--rss-gib", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=4, help="turns the targets take in the small-upload phases")
    ap.add_argument("--page-files", type=int, default=1000)
    ap.add_argument("--page-requests", type=int, default=200)
    ap.add_argument("--page-budget-s", type=float, default=120.0,
                    help="stop populating a target's page project after this long (devpi slows down)")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--gateway-env", action="append", default=[], metavar="NAME=VALUE",
                    help="extra environment for the gateway, e.g. UPLOADGW_FSYNC=false")
    ap.add_argument("--s3", action="store_true", help="the gateway's files in a bucket of moto's S3 server")
    ap.add_argument("--out", help="write the raw results as JSON here")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="gatehouse-bench-")
    procs = Processes()
    results: dict[str, dict] = {}
    try:
        dist_dir = os.path.join(work, "dists")
        os.makedirs(dist_dir)
        t0 = time.time()
        dists = {"small": [write_wheel(dist_dir, f"bench-small-{i:04d}", "1.0.0") for i in range(args.small)]}
        if args.small_same:
            same_dir = os.path.join(dist_dir, "same")
            os.makedirs(same_dir)
            dists["small_same"] = [write_wheel(same_dir, "bench-same", f"2.{i}") for i in range(args.small_same)]
        if args.big_mib:
            dists["big"] = write_wheel(dist_dir, "bench-big", "1.0.0", payload_mib=args.big_mib)
        if args.rss_gib:
            dists["rss"] = write_wheel(dist_dir, "bench-huge", "1.0.0", payload_mib=args.rss_gib * 1024)
        if args.page_files:
            page_dir = os.path.join(dist_dir, "page")
            os.makedirs(page_dir)
            dists["page"] = [write_wheel(page_dir, "bench-page", f"1.{i}") for i in range(args.page_files)]
        print(f"distributions written in {time.time() - t0:.1f}s under {dist_dir}", flush=True)

        gateway = Gateway()
        gateway.extra_env = dict(item.split("=", 1) for item in args.gateway_env)
        if args.s3:
            gateway.extra_env.update(start_bucket(work, procs))
        targets: list[Target] = [gateway, NullServer()]
        if args.no_peers:
            print("peers skipped (--no-peers)")
        elif ensure_peers():
            targets += [PyPIServer(), Devpi()]
        else:
            print("peers could not be installed; only the gateway is measured")
        started_targets: list[Target] = []
        for target in targets:
            tdir = os.path.join(work, target.name)
            os.makedirs(tdir)
            try:
                target.start(tdir, procs)
                started_targets.append(target)
            except Exception as exc:  # noqa: BLE001 - a peer that cannot start is reported, not fatal
                print(f"!! {target.name} could not be started: {exc}", flush=True)
        print(f"== small uploads, {args.rounds} rounds taking turns: "
              f"{', '.join(t.name for t in started_targets)} ...", flush=True)
        started = time.time()
        results = measure_small(started_targets, dists, args)
        print(f"   done in {time.time() - started:.1f}s", flush=True)
        for target in started_targets:
            target_dists = {k: v for k, v in dists.items() if k not in ("small", "small_same")}
            if not isinstance(target, Gateway):
                target_dists.pop("rss", None)
            if isinstance(target, NullServer):
                target_dists.pop("page", None)
            print(f"== {target.name}: measuring ...", flush=True)
            started = time.time()
            try:
                results[target.name].update(measure(target, target_dists, args, os.path.join(work, target.name)))
                results[target.name]["rss_gib"] = args.rss_gib
            except Exception as exc:  # noqa: BLE001
                results.pop(target.name, None)
                print(f"!! {target.name} failed: {type(exc).__name__}: {exc}", flush=True)
            print(f"   done in {time.time() - started:.1f}s: {json.dumps(results.get(target.name), default=str)}",
                  flush=True)
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)

    if "gatehouse" not in results:
        print("the gateway could not be measured")
        return 1
    print()
    print(table(results))
    print()
    print(floor_table(results))
    print()
    print("\n".join(verdict(results)))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
