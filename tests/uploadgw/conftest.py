"""A real auth service and a real gateway on real ports, plus twine/pip as real subprocesses."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import io
import json
import os
import secrets
import sys

import aiohttp
import pytest
from sqlalchemy import select

from authsvc.server import create_server
from gatehouse.auth.v1 import admin_pb2, common_pb2
from gatehouse.events.v1 import event_pb2
from gatehouse.infra.clock import FakeClock
from gatehouse.infra.grpcserver import open_channel
from tests import eventkeys
from tests.authsvc.conftest import AuthHarness, auth_settings
from tests.s3server import MotoServer
from uploadgw.app import METRICS
from uploadgw.models import outbox
from uploadgw.server import RunningGateway, start
from uploadgw.settings import Settings

PASSWORD = "correct horse battery staple"
EVERYTHING = 10 ** 9  # seconds: `keys(-EVERYTHING)` lists every blob, however young


@pytest.fixture
def auth_overrides():
    return {}


@pytest.fixture
def gw_overrides():
    """Override in a test module to change the gateway's settings."""
    return {}


@pytest.fixture
async def auth(make_database_url, auth_overrides):
    clock = FakeClock()
    clock.set(dt.datetime.now(dt.timezone.utc))
    settings = auth_settings(make_database_url("authsvc"), **auth_overrides)
    running = await create_server(settings, clock=clock, migrate_first=True)
    gateway = open_channel(f"127.0.0.1:{running.port}", settings.gateway_key)
    operator = open_channel(f"127.0.0.1:{running.port}", settings.operator_key)
    harness = AuthHarness(running=running, settings=settings, clock=clock, gateway=gateway, operator=operator)
    yield harness
    await gateway.close()
    await operator.close()
    await running.stop(grace=0)


def gateway_settings(database_url: str, storage_dir: str, auth: AuthHarness, **overrides) -> Settings:
    base = dict(database_url=database_url, storage_dir=storage_dir, authsvc_target=auth.target,
                authsvc_key=auth.settings.gateway_key, listen_host="127.0.0.1", listen_port=0,
                auth_timeout=2.0, sweep_interval_seconds=0, access_log=False,
                event_keys=eventkeys.producer_keys("uploadgw"),
                # The admin CLI these tests use acts as another replica would, and its changes must
                # show at once; the tests of the index's cache (test_index_cache.py) set a window.
                index_recheck_seconds=0.0)
    base.update(overrides)
    return Settings(**base)


@dataclasses.dataclass
class GatewayHarness:
    running: RunningGateway
    settings: Settings
    auth: AuthHarness
    clock: FakeClock
    http: aiohttp.ClientSession
    access_stream: io.StringIO

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def upload_url(self) -> str:
        return self.url + "/legacy/"

    @property
    def gateway(self):
        return self.running.gateway

    def access_text(self) -> str:
        """Everything the access log has written, after writing the lines it holds
        (`gw_overrides` must turn it on: `{"access_log": True}`)."""
        assert self.running.access_log is not None, "the access log is off"
        self.running.access_log.flush()
        return self.access_stream.getvalue()

    def access_lines(self) -> list[dict]:
        """The access log's lines so far, parsed."""
        return [json.loads(line) for line in self.access_text().splitlines()]

    def requests_to(self, route: str, status: int | None = None) -> float:
        """How many requests the route answered (from the gateway's metrics)."""
        registry = self.running.app[METRICS].registry
        total = 0.0
        for metric in registry.collect():
            for sample in metric.samples:
                if sample.name == "uploadgw_http_requests_total" and sample.labels["route"] == route and (
                        status is None or sample.labels["status"] == str(status)):
                    total += sample.value
        return total

    def refusals(self, reason: str) -> float:
        """How many requests were refused for `reason` (from the gateway's metrics)."""
        registry = self.running.app[METRICS].registry
        return sum(sample.value for metric in registry.collect() for sample in metric.samples
                   if sample.name == "uploadgw_http_refusals_total" and sample.labels["reason"] == reason)

    async def events(self, *tags: str) -> list[event_pb2.Event]:
        async with self.gateway.engine.connect() as conn:
            rows = (await conn.execute(select(outbox.c.tag, outbox.c.payload).order_by(outbox.c.id))).all()
        out = []
        for tag, payload in rows:
            if not tags or tag in tags:
                event = event_pb2.Event()
                event.ParseFromString(eventkeys.VERIFIER.open(payload).event)
                out.append(event)
        return out

    async def stored_blobs(self) -> list[str]:
        return sorted(await self.gateway.store.keys(-EVERYTHING))

    async def temp_files(self) -> list[str]:
        """Scratch files and blobs still pending (stored, not recorded nor removed)."""
        store = self.gateway.store
        return [*store.scratch.names(), *await store.pending(-EVERYTHING)]

    async def mark_pending(self, key: str) -> None:
        """Register a blob as pending again, as if its upload had just stored it."""
        store = self.gateway.store
        if self.settings.s3 is None:
            (store.pending_dir / key.split("/")[-1]).touch()
        else:
            await store._client.put_object(Bucket=store.bucket, Key=store._marker(key), Body=b"")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    server = MotoServer.start(str(tmp_path_factory.mktemp("moto") / "server.log"))
    yield server
    server.stop()


@pytest.fixture
def backend(request) -> str:
    """The file store of the `gw` fixture: "local", or "s3" (a bucket on moto's server); a test runs
    on both with `@pytest.mark.parametrize("backend", BACKENDS, indirect=True)`."""
    return getattr(request, "param", "local")


BACKENDS = ["local", "s3"]


@pytest.fixture
def s3_overrides():
    """Override in a test module or class to change the S3 settings of the "s3" backend."""
    return {}


@pytest.fixture
async def gw(auth, make_database_url, tmp_path, gw_overrides, backend, request):
    if backend == "s3":
        bucket = await request.getfixturevalue("s3_server").new_bucket(**request.getfixturevalue("s3_overrides"))
        gw_overrides = {"s3": bucket, **gw_overrides}
    settings = gateway_settings(make_database_url("uploadgw"), str(tmp_path / "store"), auth, **gw_overrides)
    access_stream = io.StringIO()
    running = await start(settings, clock=auth.clock, migrate_first=True, access_stream=access_stream)
    async with aiohttp.ClientSession() as http:
        yield GatewayHarness(running=running, settings=settings, auth=auth, clock=auth.clock, http=http,
                             access_stream=access_stream)
    await running.stop()


# -- users and tokens, through the real AdminService --------------------------------------------------
@dataclasses.dataclass
class Uploader:
    username: str
    user_id: str
    token: str
    token_id: str


async def make_uploader(auth: AuthHarness, username: str | None = None, *, projects=(),
                        expires_at: dt.datetime | None = None, own=()) -> Uploader:
    """A verified user (Owner of the projects in `own`, created if needed) with an API token."""
    username = username or "u" + secrets.token_hex(4)
    user = (await auth.admin.CreateUser(admin_pb2.AdminCreateUserRequest(
        username=username, email=f"{username}@example.org", password=PASSWORD, email_verified=True))).user
    for project in own:
        await auth.admin.AddRole(admin_pb2.AdminAddRoleRequest(
            project_name=project, username=username, role=common_pb2.ROLE_OWNER, create_project=True))
    return await mint(auth, username, user.id, projects=projects, expires_at=expires_at)


async def mint(auth: AuthHarness, username: str, user_id: str = "", *, projects=(),
               expires_at: dt.datetime | None = None, description: str | None = None) -> Uploader:
    request = admin_pb2.AdminMintTokenRequest(
        username=username, description=description or "t-" + secrets.token_hex(3),
        scope=common_pb2.TokenScope(all_projects=not projects, project_names=list(projects)))
    if expires_at is not None:
        request.expires_at.FromDatetime(expires_at.astimezone(dt.timezone.utc).replace(tzinfo=None))
    reply = await auth.admin.MintToken(request)
    return Uploader(username=username, user_id=user_id, token=reply.token, token_id=reply.info.id)


# -- real clients as subprocesses --------------------------------------------------------------------
@dataclasses.dataclass
class Result:
    rc: int
    output: str

    @property
    def flat(self) -> str:
        """The output with line wrapping undone (rich wraps twine's messages)."""
        return " ".join(self.output.split())


def client_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWINE_", "PIP_", "UV_"))}
    env.update(NO_COLOR="1", TERM="dumb", COLUMNS="200", PIP_CONFIG_FILE=os.devnull,
               PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", UV_NO_CONFIG="1", UV_NO_CACHE="1")
    env.update(extra)
    return env


async def run(cmd: list[str], *, env: dict[str, str] | None = None, cwd: str | None = None,
              timeout: float = 180) -> Result:
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT, env=env or client_env(), cwd=cwd)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return Result(proc.returncode, out.decode("utf-8", "replace"))


async def twine(url: str, *files, user: str | None = "__token__", password: str | None = None,
                extra: tuple[str, ...] = (), env: dict[str, str] | None = None) -> Result:
    cmd = [sys.executable, "-m", "twine", "upload", "--non-interactive", "--disable-progress-bar"]
    if url:
        cmd += ["--repository-url", url]
    if user is not None:
        cmd += ["-u", user]
    if password is not None:
        cmd += ["-p", password]
    cmd += [*extra, *map(str, files)]
    return await run(cmd, env=env or client_env(), cwd=os.path.dirname(str(files[0])) if files else None)
