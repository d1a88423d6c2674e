#!/usr/bin/env python3
"""Benchmark: a warm trusted-publishing exchange beside a small upload, over HTTP, in the same run.

Starts a local OIDC issuer (tests/oidc_issuer.py, in this process's thread), authsvc trusting it
and the gateway (processes, temporary SQLite and file store: bench_upload.py's `Gateway`), a
project with a GitHub-shaped trusted publisher and an API token of its Owner. After one warm-up of
each, it alternates ROUNDS times:

  exchange  what `uv publish --trusted-publishing always` sends: GET /_/oidc/audience, then
            POST /_/oidc/mint-token with a fresh identity token (signed before the clock starts: the CI's work)
  upload    one small wheel (a new version of the existing project) to /legacy/ with the API token,
            the multipart body twine sends (built beforehand)

both on one keep-alive connection, each crossing the gateway and authsvc. Prints p50/p90 of each,
the exchange/upload ratio and the issuer's key-set and discovery requests during the measurement.
Targets: exchange p50 <= upload p50 (ratio <= 1.0); no key fetch while warm.

    python benchmarks/bench_oidc.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.bench_upload import Gateway, Processes, write_wheel  # noqa: E402
from tests.oidc_issuer import OidcIssuer  # noqa: E402

AUDIENCE = "gatehouse-bench"
PROJECT = "widget"


def setup_project(gateway: Gateway, issuer: OidcIssuer) -> None:
    """The bench user (bench_upload's minted token) owns PROJECT, which has a GitHub publisher."""
    import asyncio

    from gatehouse.auth.v1 import admin_pb2, admin_pb2_grpc, common_pb2, publishing_pb2
    from gatehouse.infra.grpcserver import open_channel

    async def run() -> None:
        async with open_channel(gateway.auth_target, gateway.operator_key, default_timeout=30) as channel:
            admin = admin_pb2_grpc.AdminServiceStub(channel)
            await admin.AddRole(admin_pb2.AdminAddRoleRequest(project_name=PROJECT, username="bench",
                                                              role=common_pb2.ROLE_OWNER, create_project=True))
            await admin.AddPublisher(admin_pb2.AdminAddPublisherRequest(project_name=PROJECT, spec=(
                publishing_pb2.PublisherSpec(issuer_url=issuer.url, owner="octo", repository="widget",
                                             workflow="release.yml"))))

    asyncio.run(run())


def upload_body(path: str) -> tuple[dict, dict]:
    """The fields and file twine sends for `path` (built before timing)."""
    from twine.package import PackageFile

    package = PackageFile.from_filename(path, comment=None)
    fields = {":action": "file_upload", "protocol_version": "1", **{
        k: v for k, v in package.metadata_dictionary().items() if v not in (None, "", [], ())}}
    with open(path, "rb") as f:
        content = f.read()
    return fields, {"content": (os.path.basename(path), content, "application/octet-stream")}


def exchange(http: requests.Session, url: str, identity_token: str) -> float:
    started = time.perf_counter()
    audience = http.get(url + "/_/oidc/audience", timeout=30)
    minted = http.post(url + "/_/oidc/mint-token", json={"token": identity_token}, timeout=30)
    took = time.perf_counter() - started
    if audience.status_code != 200 or minted.status_code != 200 or not minted.json().get("token"):
        raise SystemExit(f"exchange failed: {audience.status_code} {minted.status_code} {minted.text[:300]}")
    return took


def upload(http: requests.Session, gateway: Gateway, body: tuple[dict, dict]) -> float:
    fields, files = body
    started = time.perf_counter()
    reply = http.post(gateway.upload_url, data=fields, files=files, auth=("__token__", gateway.password), timeout=60)
    took = time.perf_counter() - started
    if reply.status_code != 200:
        raise SystemExit(f"upload failed: {reply.status_code} {reply.reason}")
    return took


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    procs = Processes()
    with tempfile.TemporaryDirectory(prefix="gatehouse-bench-oidc-") as work, OidcIssuer() as issuer:
        try:
            gateway = Gateway()
            gateway.auth_env = {"AUTHSVC_OIDC_AUDIENCE": AUDIENCE, "AUTHSVC_OIDC_ISSUERS": json.dumps(
                [{"url": issuer.url, "kind": "github", "name": "GitHub"}])}
            gateway.start(work, procs)
            setup_project(gateway, issuer)
            wheels = os.path.join(work, "wheels")
            os.makedirs(wheels)
            bodies = [upload_body(write_wheel(wheels, PROJECT, f"1.{i}")) for i in range(args.rounds + 1)]

            def identity_token() -> str:  # a fresh one per exchange, signed before the clock starts
                return issuer.token(issuer.github_claims("octo/widget", audience=AUDIENCE))

            with requests.Session() as http:
                exchange(http, gateway.url, identity_token())  # warm: the issuer's keys are fetched here
                upload(http, gateway, bodies[0])
                keys_before, discovery_before = issuer.fetches, issuer.discovery_fetches
                exchanges, uploads = [], []
                for i in range(1, args.rounds + 1):
                    exchanges.append(exchange(http, gateway.url, identity_token()))
                    uploads.append(upload(http, gateway, bodies[i]))
                key_fetches = issuer.fetches - keys_before
                discovery_fetches = issuer.discovery_fetches - discovery_before
        finally:
            procs.stop_all()
    ex50, up50 = statistics.median(exchanges), statistics.median(uploads)
    ratio = ex50 / up50
    print(f"{'':<34}{'p50 ms':>10}{'p90 ms':>10}")
    print(f"{'exchange (audience + mint-token)':<34}{ex50 * 1000:>10.2f}{percentile(exchanges, 90) * 1000:>10.2f}")
    print(f"{'small upload, existing project':<34}{up50 * 1000:>10.2f}{percentile(uploads, 90) * 1000:>10.2f}")
    print(f"\nrounds: {args.rounds}; exchange/upload p50 ratio: {ratio:.2f}")
    print(f"issuer requests while warm: key set {key_fetches}, discovery {discovery_fetches}")
    met = ratio <= 1.0 and key_fetches == 0
    print(f"targets (ratio <= 1.0, no key fetch): {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
