"""Balanced calls between the services (issue 22): three auth service processes behind one name,
a gateway process whose channel resolves that name (`dns://`, round_robin), real uploads.

Each auth service counts the upload checks it served in its own metrics: every one carries at least
a fifth of them. Then the busiest one hangs while uploads run (checks sent to it wait) and is
SIGKILLed, and no upload fails: the checks on its streams go again on the others, and the client
never retries anything.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time

import aiohttp
import pytest

from gatehouse.auth.v1 import admin_pb2, admin_pb2_grpc, common_pb2
from gatehouse.infra.grpcserver import open_channel
from tests.scale.cluster import BalancedFleet, fleet_env
from tests.uploadgw.dists import make_wheel
from tests.uploadgw.http_support import basic, encode, twine_fields

USERS = 3
VERSIONS = 20  # per user and phase
PARALLEL = 6
KILL_AFTER = 15  # uploads of the second phase done before the kill
FROZEN = 0.5  # seconds the victim hangs before it dies: well within the gateway's check deadline
CHECKS = re.compile(r'^gatehouse_grpc_requests_total\{[^}]*method="/gatehouse\.auth\.v1\.TokenService/'
                    r'VerifyUploadToken"[^}]*\} ([0-9.e+]+)$', re.MULTILINE)


async def _create_users(fleet: BalancedFleet) -> dict[str, str]:
    """username -> account-wide token (the operator's calls go through the balanced name too)."""
    tokens = {}
    async with open_channel(fleet.auth_service_target, fleet.env["AUTHSVC_OPERATOR_KEY"]) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        for i in range(USERS):
            name = f"balanced{i}"
            await admin.CreateUser(admin_pb2.AdminCreateUserRequest(
                username=name, email=f"{name}@example.org", email_verified=True))
            minted = await admin.MintToken(admin_pb2.AdminMintTokenRequest(
                username=name, description="balanced", scope=common_pb2.TokenScope(all_projects=True)))
            tokens[name] = minted.token
    return tokens


async def _checks_served(http: aiohttp.ClientSession, fleet: BalancedFleet, replica: int) -> float:
    """The upload checks one auth service answered, by its own /metrics (every status)."""
    async with http.get(fleet.metrics_url(replica)) as resp:
        assert resp.status == 200
        return sum(float(n) for n in CHECKS.findall(await resp.text()))


async def _upload_all(http: aiohttp.ClientSession, fleet: BalancedFleet, uploads, done=None) -> list:
    """POST each (token, wheel) as twine does, PARALLEL at a time, once: -> [(file, status, reason)] refused."""
    failed, limit = [], asyncio.Semaphore(PARALLEL)

    async def upload(token, path) -> None:
        ctype, head, tail = encode(twine_fields(path), path.name, path.read_bytes())
        headers = {"Content-Type": ctype, "User-Agent": "twine/7.0.0 balanced", "Authorization": basic(token)}
        async with limit:
            try:
                async with http.post(f"http://127.0.0.1:{fleet.http_ports[0]}/legacy/", data=head + tail,
                                     headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        failed.append((path.name, resp.status, resp.reason))
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                failed.append((path.name, "no answer", repr(exc)))
            if done is not None:
                done.append(path.name)

    await asyncio.gather(*(upload(token, path) for token, path in uploads))
    return failed


async def _kill_mid_run(fleet: BalancedFleet, victim: str, done: list, total: int) -> int:
    """Once KILL_AFTER uploads are done, freeze the victim (SIGSTOP) for FROZEN seconds, so that
    checks sent to it are surely waiting, then SIGKILL it; -> how many uploads were done by then."""
    while len(done) < KILL_AFTER:
        await asyncio.sleep(0.005)
    fleet.procs[victim].send_signal(signal.SIGSTOP)
    await asyncio.sleep(FROZEN)
    fleet.kill(victim)
    assert len(done) < total - PARALLEL, "the kill came too late: no upload was left to run"
    return len(done)


@pytest.mark.slow
async def test_three_auth_services_behind_one_name_share_the_checks_and_losing_one_fails_no_upload(
        pg_database_urls, redis_server, stream_name, tmp_path):
    started = time.monotonic()
    fleet = BalancedFleet(fleet_env(pg_database_urls, redis_server.url, stream_name, tmp_path), tmp_path)
    try:
        await asyncio.to_thread(fleet.migrate)
        fleet.start()
        await fleet.wait_ready()
        tokens = await _create_users(fleet)
        wheel_dir = tmp_path / "wheels"
        wheel_dir.mkdir()
        phases = [[(tokens[user], make_wheel(wheel_dir, f"balanced-{user}", f"{phase}.{v}"))
                   for v in range(VERSIONS) for user in tokens] for phase in (1, 2)]
        replicas = range(len(fleet.auth_addresses))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            # 1. Every auth service carries its share of the checks.
            failed = await _upload_all(http, fleet, phases[0])
            assert not failed, f"uploads refused: {failed}\n{fleet.tails()}"
            served = [await _checks_served(http, fleet, i) for i in replicas]
            assert sum(served) >= 2 * len(phases[0]), served  # two checks an upload: headers, then fields
            assert min(served) >= 0.2 * sum(served), f"checks per auth service: {served}"

            # 2. The busiest dies mid-run (no clean shutdown); the gateway's checks go on with the others.
            busiest = served.index(max(served))
            victim, done = f"authsvc-{busiest}", []
            failed, done_at_kill = await asyncio.gather(_upload_all(http, fleet, phases[1], done),
                                                        _kill_mid_run(fleet, victim, done, len(phases[1])))
            assert not failed, f"uploads failed after losing {victim}: {failed}\n{fleet.tails()}"
            fleet.assert_alive(*(n for n in fleet.procs if n != victim))
            after = [await _checks_served(http, fleet, i) - served[i] for i in replicas if i != busiest]
            assert min(after) > 0, f"checks after the kill, per surviving auth service: {after}"
            print(f"balanced: checks per auth service {served}; {done_at_kill} of {len(phases[1])} uploads "
                  f"done at the kill, then {after} checks on the survivors, no upload failed")
    finally:
        fleet.stop()
    assert time.monotonic() - started < 120, "the balanced-calls test must stay quick"
