#!/usr/bin/env python3
"""Read benchmark: the gateway's simple pages and file downloads against nginx and pypiserver.

Standalone: starts authsvc and the gateway as processes (SQLite, local file store, access log on,
as `bench_upload.py` does), fills one project with FILES wheels (FILES - 1 small ones and one of
WHEEL_MIB), then in the same run:

  nginx       Debian's package, one worker process, serving the gateway's own page bodies and the
              same wheel as static files (the ceiling: what the bytes cost to serve)
  pypiserver  from a throwaway venv under /tmp (never a project dependency), with the same wheels
              in its directory
  private     a second gateway replica on the same database and file store with
              UPLOADGW_INDEX_PRIVATE=true, every request carrying the API token (the price of the
              per-request token check), and a third that remembers a checked token for 5 s
              (UPLOADGW_INDEX_AUTH_CACHE_SECONDS: a revoked token reads on for at most that long)

Each row is wrk (Debian's package) with CONNECTIONS connections for SECONDS seconds, wrk pinned to
one CPU and every server to another (when the machine has two). Two tables: requests/s, and
requests per CPU-second of the server's processes (authsvc's included for the gateway: a private
read costs its CPU too), which swings less on a machine others share; each with the gateway's
ratios to nginx and to pypiserver on the same row, then the targets.

  apt-get install -y nginx wrk      # once, if missing (the script says so and stops)
  python benchmarks/bench_read.py [--seconds 5] [--connections 32] [--files 101] [--wheel-mib 0.6]
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import requests

from bench_upload import (PIP_ACCEPT, Gateway, Processes, PyPIServer, free_port, twine_settings, upload,
                          wait_http, write_wheel)

PEERS_VENV = "/tmp/gatehouse-bench-peers/venv"
PYPISERVER_PACKAGES = ["pypiserver==2.*", "passlib==1.7.4", "bcrypt<4.1"]
PROJECT = "bench-read"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
TARGETS = {"json page": 0.25, "html page": 0.25, "wheel": 0.5}  # minimum ratio to nginx
PEER_FACTOR = 10.0  # minimum ratio to pypiserver
PRIVATE_CACHE_S = "5"  # UPLOADGW_INDEX_AUTH_CACHE_SECONDS of the third replica
NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    types {{ {json_type} json; text/html html; application/zip whl; }}
    access_log {work}/nginx-access.log;
    client_body_temp_path {work}/nginx-tmp;
    proxy_temp_path {work}/nginx-tmp;
    fastcgi_temp_path {work}/nginx-tmp;
    uwsgi_temp_path {work}/nginx-tmp;
    scgi_temp_path {work}/nginx-tmp;
    sendfile on;
    server {{
        listen 127.0.0.1:{port};
        root {work}/static;
    }}
}}
"""


def require_tools() -> None:
    missing = [tool for tool in ("nginx", "wrk", "taskset") if not shutil.which(tool)]
    if missing:
        sys.exit(f"bench_read needs {', '.join(missing)} (Debian packages): apt-get install -y nginx wrk")


def ensure_pypiserver() -> str | None:
    binary = os.path.join(PEERS_VENV, "bin", "pypi-server")
    if os.path.exists(binary):
        return binary
    try:
        if not os.path.exists(os.path.join(PEERS_VENV, "bin", "python")):
            subprocess.run([sys.executable, "-m", "venv", PEERS_VENV], check=True)
        subprocess.run([os.path.join(PEERS_VENV, "bin", "pip"), "install", "-q", *PYPISERVER_PACKAGES],
                       check=True, timeout=900)
        return binary
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"!! could not install pypiserver in {PEERS_VENV}: {exc}")
        return None


def pin_servers() -> tuple[str, str]:
    """This process (and so every server it starts) on one CPU, wrk on another: (client, servers)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return str(cpus[0]), str(cpus[0])
    os.sched_setaffinity(0, {cpus[1]})
    return str(cpus[0]), str(cpus[1])


def start_nginx(work: str, procs: Processes, pages: dict[str, bytes], wheel: str) -> tuple[str, list[int]]:
    """nginx serving `pages` (the gateway's bodies, by file name) and the wheel under /files/:
    (its URL, [its master's pid])."""
    port = free_port()
    os.makedirs(work)
    static = os.path.join(work, "static")
    os.makedirs(os.path.join(static, "simple", PROJECT))
    os.makedirs(os.path.join(static, "files"))
    os.makedirs(os.path.join(work, "nginx-tmp"))
    for name, body in pages.items():
        with open(os.path.join(static, "simple", PROJECT, name), "wb") as f:
            f.write(body)
    shutil.copy(wheel, os.path.join(static, "files"))
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(work=work, port=port, json_type=JSON_TYPE))
    proc = procs.start(["nginx", "-c", conf, "-p", work], log=os.path.join(work, "nginx.log"))
    base = f"http://127.0.0.1:{port}"
    wait_http(base + f"/simple/{PROJECT}/index.html")
    return base, [proc.pid]


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time of these processes and all their descendants (nginx's workers)."""
    total, todo = 0.0, list(pids)
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    todo += [int(child) for child in f.read().split()]
        except FileNotFoundError:
            continue
    return total


def wrk(url: str, cpu: str, seconds: float, connections: int, headers: dict[str, str]) -> tuple[float, int]:
    """(requests per second, requests), after checking that every answer was a 2xx or 304."""
    cmd = ["taskset", "-c", cpu, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    out = subprocess.run(cmd + [url], check=True, capture_output=True, text=True).stdout
    if "Non-2xx or 3xx responses" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors on {url}:\n{out}")
    return (float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            int(re.search(r"(\d+) requests in", out).group(1)))


def fill(gateway: Gateway, dist_dir: str, files: int, wheel_mib: float) -> tuple[list[str], str]:
    paths = [write_wheel(dist_dir, PROJECT, f"1.{i}") for i in range(files - 1)]
    wheel = write_wheel(dist_dir, PROJECT, "2.0", payload_mib=wheel_mib)
    settings = twine_settings(gateway)
    for path in paths + [wheel]:
        upload(settings, path)
    return paths + [wheel], wheel


def fetch(url: str, headers: dict[str, str]) -> requests.Response:
    response = requests.get(url, headers=headers, timeout=30)
    response.raise_for_status()
    return response


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=5, help="wrk duration of each row")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--files", type=int, default=101, help="files of the project (the last one is the big wheel)")
    ap.add_argument("--wheel-mib", type=float, default=0.6)
    ap.add_argument("--gateway-env", action="append", default=[], metavar="NAME=VALUE",
                    help="extra environment for the gateways, e.g. UPLOADGW_ACCESS_LOG=false")
    ap.add_argument("--rows", help="only these rows (comma-separated, e.g. 'json page,wheel')")
    args = ap.parse_args()
    require_tools()
    client_cpu, server_cpu = pin_servers()
    work = tempfile.mkdtemp(prefix="gatehouse-bench-read-")
    os.chmod(work, 0o755)  # nginx's worker runs as an unprivileged user and reads the static files here
    procs = Processes()
    rates: dict[tuple[str, str], float] = {}
    per_cpu: dict[tuple[str, str], float] = {}  # requests per CPU-second of the server's processes
    try:
        gateway = Gateway()
        gateway.extra_env = dict(item.split("=", 1) for item in args.gateway_env)
        os.makedirs(os.path.join(work, "gatehouse"))
        gateway.start(os.path.join(work, "gatehouse"), procs)
        dist_dir = os.path.join(work, "dists")
        os.makedirs(dist_dir)
        started = time.time()
        paths, wheel = fill(gateway, dist_dir, args.files, args.wheel_mib)
        print(f"{len(paths)} files uploaded in {time.time() - started:.1f}s", flush=True)

        page = gateway.simple_url + PROJECT + "/"
        json_page = fetch(page, {"Accept": PIP_ACCEPT})
        html_page = fetch(page, {"Accept": "text/html"})
        wheel_name = os.path.basename(wheel)
        wheel_url = next(f["url"] for f in json_page.json()["files"] if f["filename"] == wheel_name)
        gw_urls = {"json page": (page, {"Accept": PIP_ACCEPT}), "html page": (page, {"Accept": "text/html"}),
                   "json page, revalidated (304)": (page, {"Accept": PIP_ACCEPT,
                                                           "If-None-Match": json_page.headers["ETag"]}),
                   "wheel": (requests.compat.urljoin(page, wheel_url), {})}

        basic = {"Authorization": "Basic " + base64.b64encode(f"__token__:{gateway.password}".encode()).decode()}
        servers = {"gatehouse": gw_urls}
        auth_pid = procs.procs[0].pid  # Gateway.start starts authsvc first; private reads cost its CPU too
        pids = {"gatehouse": [gateway.pid, auth_pid]}
        for name, cache in (("gatehouse private", "0"), (f"private, {PRIVATE_CACHE_S} s token cache", PRIVATE_CACHE_S)):
            port = free_port()
            pids[name] = [auth_pid, gateway.start_gateway(os.path.join(work, "gatehouse"), procs, port,
                                                          UPLOADGW_INDEX_PRIVATE="true",
                                                          UPLOADGW_INDEX_AUTH_CACHE_SECONDS=cache)]
            servers[name] = {row: (url.replace(gateway.simple_url.removesuffix("/simple/"), f"http://127.0.0.1:{port}"),
                                   dict(h, **basic)) for row, (url, h) in gw_urls.items()}

        nginx, pids["nginx"] = start_nginx(os.path.join(work, "nginx"), procs,
                            {"index.json": json_page.content, "index.html": html_page.content}, wheel)
        nginx_etag = fetch(f"{nginx}/simple/{PROJECT}/index.json", {}).headers["ETag"]
        nginx_urls = {"json page": (f"{nginx}/simple/{PROJECT}/index.json", {}),
                      "html page": (f"{nginx}/simple/{PROJECT}/index.html", {}),
                      "json page, revalidated (304)": (f"{nginx}/simple/{PROJECT}/index.json",
                                                       {"If-None-Match": nginx_etag}),
                      "wheel": (f"{nginx}/files/{wheel_name}", {})}

        servers["nginx"] = nginx_urls
        if ensure_pypiserver():
            peer = PyPIServer()
            os.makedirs(os.path.join(work, "pypiserver"))
            peer.start(os.path.join(work, "pypiserver"), procs)
            pids["pypiserver"] = [peer.pid]
            for path in paths:
                shutil.copy(path, peer.packages)
            servers["pypiserver"] = {"json page": (peer.simple_url + PROJECT + "/", {"Accept": PIP_ACCEPT}),
                                     "html page": (peer.simple_url + PROJECT + "/", {"Accept": "text/html"}),
                                     "wheel": (peer.simple_url.replace("/simple/", "/packages/") + wheel_name, {})}
        for name, urls in servers.items():  # the same bytes everywhere before anything is timed
            assert len(fetch(*urls["wheel"]).content) == os.path.getsize(wheel), name
        print(f"wrk: {args.connections} connections, {args.seconds}s a row, client on CPU {client_cpu}, "
              f"servers on CPU {server_cpu}; load average before: {os.getloadavg()}", flush=True)
        rows = args.rows.split(",") if args.rows else list(gw_urls)
        for row in rows:
            for name, urls in servers.items():
                if row in urls:
                    before = cpu_seconds(pids[name])
                    rates[(row, name)], done = wrk(urls[row][0], client_cpu, args.seconds, args.connections,
                                                   urls[row][1])
                    per_cpu[(row, name)] = done / max(cpu_seconds(pids[name]) - before, 0.01)
                    print(f"  {row:30} {name:30} {rates[(row, name)]:10.0f} req/s "
                          f"{per_cpu[(row, name)]:10.0f} req/CPU-s", flush=True)
        print(f"load average after: {os.getloadavg()}")
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    print()
    measured = [row for row in gw_urls if any((row, n) in rates for n in ("gatehouse", "nginx"))]
    print(report(rates, measured, args, "requests/s"))
    print()
    print(report(per_cpu, measured, args, "requests per CPU-second of the server's processes (steadier on a "
                                           "shared machine)"))
    return 0


def report(rates: dict[tuple[str, str], float], rows: list[str], args, measure: str) -> str:
    names = ["gatehouse", "gatehouse private", f"private, {PRIVATE_CACHE_S} s token cache", "nginx", "pypiserver"]
    lines = [measure + ":", "", f"| row ({args.files} files, {args.wheel_mib} MiB wheel) | " + " | ".join(names)
             + " | gatehouse / nginx | private / nginx | gatehouse / pypiserver |",
             "|" + "---|" * (len(names) + 4)]
    verdicts = []
    for row in rows:
        cells = [f"{rates[(row, n)]:.0f}" if (row, n) in rates else "-" for n in names]
        ratios = []
        for mine, theirs in (("gatehouse", "nginx"), ("gatehouse private", "nginx"), ("gatehouse", "pypiserver")):
            if (row, mine) in rates and (row, theirs) in rates:
                ratios.append(f"{rates[(row, mine)] / rates[(row, theirs)]:.2f}x")
            else:
                ratios.append("-")
        lines.append(f"| {row} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
        if row in TARGETS and (row, "nginx") in rates:
            ratio = rates[(row, "gatehouse")] / rates[(row, "nginx")]
            verdicts.append(f"- {row} >= {TARGETS[row]}x nginx: {'MET' if ratio >= TARGETS[row] else 'MISSED'} "
                            f"({ratio:.2f}x)")
        if row in TARGETS and (row, "pypiserver") in rates:
            ratio = rates[(row, "gatehouse")] / rates[(row, "pypiserver")]
            verdicts.append(f"- {row} >= {PEER_FACTOR:.0f}x pypiserver: "
                            f"{'MET' if ratio >= PEER_FACTOR else 'MISSED'} ({ratio:.1f}x)")
    return "\n".join(lines + [""] + verdicts)


if __name__ == "__main__":
    sys.exit(main())
