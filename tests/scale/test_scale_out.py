"""Scale-out (issue 7): two of every process on one PostgreSQL and one Redis, one of each SIGKILLed mid-run.

Clients retry a failed request against the other instance, as a load balancer would. Afterwards every
accepted upload is indexed and downloads intact, every outbox row gets published, and the audit log
holds exactly the outboxes' events, each once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
import urllib.parse

import aiohttp
import asyncpg
import grpc
import pytest
import redis.asyncio

from gatehouse.auth.v1 import accounts_pb2, accounts_pb2_grpc, admin_pb2, admin_pb2_grpc, common_pb2
from gatehouse.infra.grpcserver import open_channel
from tests.scale.cluster import Fleet, fleet_env
from tests.uploadgw.dists import make_wheel
from tests.uploadgw.http_support import basic, encode, twine_fields

USERS = 6
VERSIONS = 10  # per user: 60 uploads
LOGINS_PER_USER = 4
KILL_AFTER_UPLOADS = 20
KILL_AFTER_LOGINS = 4
RETRY_WITHIN = 30.0
SETTLE_WITHIN = 60.0
JSON_INDEX = "application/vnd.pypi.simple.v1+json"
PASSWORD = "correct horse battery staple 42"
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
VICTIMS = ("authsvc-0", "uploadgw-1", "relay-authsvc-0", "relay-uploadgw-1", "auditsvc-0")


@dataclasses.dataclass
class Workload:
    accepted_uploads: list = dataclasses.field(default_factory=list)  # (project, path)
    rejected_uploads: list = dataclasses.field(default_factory=list)  # (filename, status, reason)
    failed_over: int = 0
    logins: list = dataclasses.field(default_factory=list)  # (wrong password?, grpc code)
    retried_logins: list = dataclasses.field(default_factory=list)  # wrong password? of each retried one
    login_times: list = dataclasses.field(default_factory=list)
    uploads_done: int = 0
    killed_at: float | None = None
    killed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)


async def _create_users(fleet: Fleet) -> dict[str, str]:
    """username -> account-wide token; each user owns project `scale-<username>`."""
    tokens = {}
    async with open_channel(f"127.0.0.1:{fleet.auth_ports[1]}", fleet.env["AUTHSVC_OPERATOR_KEY"]) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        for i in range(USERS):
            name = f"scaler{i}"
            await admin.CreateUser(admin_pb2.AdminCreateUserRequest(
                username=name, email=f"{name}@example.org", password=PASSWORD, email_verified=True))
            await admin.AddRole(admin_pb2.AdminAddRoleRequest(
                project_name=f"scale-{name}", username=name, role=common_pb2.ROLE_OWNER, create_project=True))
            minted = await admin.MintToken(admin_pb2.AdminMintTokenRequest(
                username=name, description="scale-out", scope=common_pb2.TokenScope(all_projects=True)))
            tokens[name] = minted.token
    return tokens


async def _upload(http: aiohttp.ClientSession, fleet: Fleet, first: int, path, token: str, work: Workload,
                  project: str) -> None:
    """POST like twine to gateway `first`; on a dropped connection or 5xx, retry on the other one."""
    fields = twine_fields(path)
    ctype, head, tail = encode(fields, path.name, path.read_bytes())
    headers = {"Content-Type": ctype, "User-Agent": "twine/7.0.0 scale", "Authorization": basic(token)}
    deadline = time.monotonic() + RETRY_WITHIN
    attempt = 0
    while True:
        port = fleet.http_ports[(first + attempt) % 2]
        try:
            async with http.post(f"http://127.0.0.1:{port}/legacy/", data=head + tail, headers=headers) as resp:
                await resp.read()
                if resp.status == 200:
                    work.accepted_uploads.append((project, path))
                    work.failed_over += attempt > 0
                    break
                if resp.status < 500:
                    work.rejected_uploads.append((path.name, resp.status, resp.reason))
                    break
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        attempt += 1
        if time.monotonic() > deadline:
            work.rejected_uploads.append((path.name, "gave up", attempt))
            break
        await asyncio.sleep(0.2)
    work.uploads_done += 1


async def _login(stubs, first: int, username: str, wrong: bool, work: Workload) -> None:
    request = accounts_pb2.LoginRequest(
        username=username, password="not the password" if wrong else PASSWORD,
        client=common_pb2.ClientInfo(ip_address="198.51.100.7", user_agent="scale-test"))
    deadline = time.monotonic() + RETRY_WITHIN
    attempt = 0
    while True:
        try:
            reply = await stubs[(first + attempt) % 2].Login(request)
            work.logins.append((wrong, grpc.StatusCode.OK if reply.session_token else "no session"))
            work.login_times.append(time.monotonic())
            return
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in RETRYABLE or time.monotonic() > deadline:
                work.logins.append((wrong, exc.code()))
                work.login_times.append(time.monotonic())
                return
        if attempt == 0:
            work.retried_logins.append(wrong)
        attempt += 1
        await asyncio.sleep(0.2)


async def _kill_mid_run(fleet: Fleet, work: Workload) -> None:
    while work.uploads_done < KILL_AFTER_UPLOADS or len(work.logins) < KILL_AFTER_LOGINS:
        await asyncio.sleep(0.02)
    fleet.assert_alive()
    for name in VICTIMS:
        fleet.kill(name)
    work.killed_at = time.monotonic()
    work.killed.set()


async def _run_workload(fleet: Fleet, tokens: dict[str, str], wheels) -> Workload:
    work = Workload()
    gateway_key = fleet.env["AUTHSVC_GATEWAY_KEY"]
    channels = [open_channel(f"127.0.0.1:{port}", gateway_key) for port in fleet.auth_ports]
    stubs = [accounts_pb2_grpc.AccountServiceStub(c) for c in channels]
    limit = asyncio.Semaphore(6)

    async def upload(i, project, path, token):
        async with limit:
            await _upload(http, fleet, i % 2, path, token, work, project)

    async def login(j, username):
        half = USERS * LOGINS_PER_USER // 2
        if j >= half:  # the second half starts once one process of each kind is dead
            await work.killed.wait()
        await asyncio.sleep(0.05 * (j % half))
        await _login(stubs, j % 2, username, wrong=j % 3 == 0, work=work)

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
            jobs = [upload(i, project, path, tokens[user]) for i, (user, project, path) in enumerate(wheels)]
            jobs += [login(j, f"scaler{j % USERS}") for j in range(USERS * LOGINS_PER_USER)]
            await asyncio.gather(_kill_mid_run(fleet, work), *jobs)
    finally:
        for channel in channels:
            await channel.close()
    return work


async def _check_index(fleet: Fleet, accepted) -> None:
    """The surviving gateway lists every accepted file, and each downloads with the listed sha256."""
    base = f"http://127.0.0.1:{fleet.http_ports[0]}"
    by_project: dict[str, dict[str, str]] = {}
    for project, path in accepted:
        by_project.setdefault(project, {})[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        for project, expected in by_project.items():
            page = f"{base}/simple/{project}/"
            async with http.get(page, headers={"Accept": JSON_INDEX}) as resp:
                assert resp.status == 200, (page, resp.status)
                listed = {f["filename"]: f for f in (await resp.json(content_type=None))["files"]}
            assert set(listed) == set(expected), (project, sorted(set(expected) ^ set(listed)))
            for filename, sha256 in expected.items():
                assert listed[filename]["hashes"]["sha256"] == sha256, filename
                async with http.get(urllib.parse.urljoin(page, listed[filename]["url"])) as resp:
                    assert resp.status == 200, (filename, resp.status)
                    assert hashlib.sha256(await resp.read()).hexdigest() == sha256, filename


async def _fetch(url: str, sql: str):
    conn = await asyncpg.connect(url, timeout=5)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def _settle(what: str, check, fleet: Fleet):
    """Poll `check()` (-> (done, value, detail)) until done, or fail after SETTLE_WITHIN seconds."""
    deadline = time.monotonic() + SETTLE_WITHIN
    while True:
        done, value, detail = await check()
        if done:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {SETTLE_WITHIN:.0f} s: {detail}\n{fleet.tails()}")
        await asyncio.sleep(0.5)


async def _published_outbox(fleet: Fleet) -> set[str]:
    """Every event id of both producers' outboxes, once all their rows are published."""
    async def check():
        rows = []
        for service in ("authsvc", "uploadgw"):
            rows += await _fetch(fleet.env[f"{service.upper()}_DATABASE_URL"],
                                 "SELECT event_id, tag, published_at FROM outbox")
        waiting = [r["event_id"] for r in rows if r["published_at"] is None]
        return not waiting, rows, f"{len(waiting)} of {len(rows)} outbox rows unpublished"

    rows = await _settle("publishing every outbox row", check, fleet)
    ids = [r["event_id"] for r in rows]
    assert len(ids) == len(set(ids))
    return rows


@pytest.mark.slow
async def test_two_of_everything_survive_losing_one_of_each(pg_database_urls, redis_server, stream_name, tmp_path):
    started = time.monotonic()
    fleet = Fleet(fleet_env(pg_database_urls, redis_server.url, stream_name, tmp_path), tmp_path)
    try:
        await asyncio.to_thread(fleet.migrate)
        fleet.start()
        await fleet.wait_ready()
        tokens = await _create_users(fleet)
        wheel_dir = tmp_path / "wheels"
        wheel_dir.mkdir()
        wheels = [(user, f"scale-{user}", make_wheel(wheel_dir, f"scale-{user}", f"1.{v}"))
                  for v in range(VERSIONS) for user in tokens]
        work = await _run_workload(fleet, tokens, wheels)
        fleet.assert_alive(*(n for n in fleet.procs if n not in VICTIMS))

        assert work.killed_at is not None and work.uploads_done == len(wheels)
        assert not work.rejected_uploads, f"uploads refused or lost: {work.rejected_uploads}\n{fleet.tails()}"
        assert len(work.accepted_uploads) == len(wheels)
        assert work.failed_over > 0, "no upload needed the other gateway: the kill came too late"
        expected = [(wrong, grpc.StatusCode.UNAUTHENTICATED if wrong else grpc.StatusCode.OK)
                    for wrong, _ in work.logins]
        assert work.logins == expected, f"login outcomes: {work.logins}"
        assert len(work.logins) == USERS * LOGINS_PER_USER
        after = sum(t > work.killed_at for t in work.login_times)
        assert 0 < after < len(work.logins), f"{after} of {len(work.logins)} logins after the kill: not mid-run"
        print(f"scale-out: {len(work.accepted_uploads)} uploads ({work.failed_over} failed over), "
              f"{len(work.logins)} logins ({after} after the kill)")

        await _check_index(fleet, work.accepted_uploads)

        rows = await _published_outbox(fleet)
        ids = {r["event_id"] for r in rows}
        tags = [r["tag"] for r in rows]
        assert tags.count("file:add") == len(wheels), "one file:add event per stored file"
        # A login the killed instance committed but never answered is done again on the other one.
        for tag, wrong in (("account:login:success", False), ("account:login:failure", True)):
            answered = sum(1 for w, _ in work.logins if w == wrong)
            retried = sum(1 for w in work.retried_logins if w == wrong)
            assert answered <= tags.count(tag) <= answered + retried, (tag, tags.count(tag), answered, retried)

        async def audit_check():
            stored = [r["event_id"] for r in await _fetch(fleet.env["AUDITSVC_DATABASE_URL"],
                                                          "SELECT event_id FROM events")]
            done = len(stored) == len(set(stored)) and set(stored) == ids
            return done, stored, (f"{len(ids - set(stored))} missing, {len(set(stored) - ids)} unexpected, "
                                  f"{len(stored) - len(set(stored))} duplicated")

        stored = await _settle("the audit log holding every event once", audit_check, fleet)
        assert sorted(stored) == sorted(ids)

        async def acked_check():
            client = redis.asyncio.Redis.from_url(fleet.env["GATEHOUSE_REDIS_URL"])
            try:
                pending = (await client.xpending(fleet.env["GATEHOUSE_EVENT_STREAM"], "auditsvc"))["pending"]
            finally:
                await client.aclose()
            return pending == 0, pending, f"{pending} stream entries still pending (a dead consumer's unclaimed?)"

        await _settle("the consumer group acknowledging every entry", acked_check, fleet)
        print(f"scale-out: {len(ids)} events, each in the audit log once")
    finally:
        fleet.stop()
    assert time.monotonic() - started < 120, "the scale-out test must stay quick"
