"""The gateway's project-deletion consumer group with a replica that died (real processes)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

import pytest
import redis.asyncio as aioredis

from tests.uploadgw.conftest import make_uploader
from tests.uploadgw.dists import make_wheel
from tests.uploadgw.http_support import post_upload
from uploadgw.projectsync import GROUP, ProjectDeletionListener


@pytest.fixture
def gw_overrides(redis_server, stream_name):
    # The app's own listener stays off: this test runs the replicas itself.
    return {"redis_url": redis_server.url, "event_stream": stream_name, "project_events": False}


@pytest.fixture
def auth_overrides(redis_server, stream_name):
    return {"relay_enabled": True, "redis_url": redis_server.url, "event_stream": stream_name}


async def _consumers(client, stream) -> dict[bytes, int]:
    return {c["name"]: c["pending"] for c in await client.xinfo_consumers(stream, GROUP)}


async def test_a_killed_replica_has_its_deletion_claimed_then_leaves_the_group(gw, tmp_path, redis_server,
                                                                               stream_name, repo_root):
    """Guards issue 19: a replica whose process died stayed in the group forever. Its unacknowledged
    `project:delete` is claimed and carried out by a live replica, and only then is it removed."""
    from gatehouse.auth.v1 import admin_pb2

    up = await make_uploader(gw.auth, own=["doomed-pkg"])
    assert (await post_upload(gw, make_wheel(tmp_path, "doomed-pkg", "1.0"), up.token))[0] == 200
    await gw.auth.admin.DeleteProject(admin_pb2.AdminDeleteProjectRequest(project_name="doomed-pkg"))
    client = aioredis.Redis.from_url(redis_server.url)
    marker = tmp_path / "read"
    # A replica reads everything relayed so far (the deletion among it), then is killed mid-way.
    proc = subprocess.Popen([sys.executable, "-m", "tests.infra._dying_reader", redis_server.url, stream_name,
                             GROUP, "dead-replica", "100", str(marker)], cwd=repo_root)
    live = ProjectDeletionListener(redis_server.url, stream_name, gw.gateway.releases, gw.gateway.auth,
                                   consumer="live-replica", block_ms=50, claim_idle_ms=300,
                                   consumer_expiry_ms=600)
    try:
        async def deletion_read() -> bool:
            if not (marker.exists() and marker.read_text()):
                return False
            tags = [fields[b"tag"] for _id, fields in await client.xrange(stream_name, min=b"-", max=b"+")]
            return tags.count(b"project:delete") == 1 and len(marker.read_text().split(",")) == len(tags)
        for _ in range(600):
            if await deletion_read():
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the replica never read the deletion")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        held = (await _consumers(client, stream_name))[b"dead-replica"]
        assert held >= 1
        live.start()
        for _ in range(400):
            if set(await _consumers(client, stream_name)) == {b"live-replica"}:
                break
            await asyncio.sleep(0.05)
        remaining = await _consumers(client, stream_name)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await live.stop()
        await client.aclose()
    assert set(remaining) == {b"live-replica"} and remaining[b"live-replica"] == 0
    assert live.purged == 1 and live.source.claimed == held
    async with gw.http.get(gw.url + "/simple/doomed-pkg/") as resp:
        assert resp.status == 404
    assert await gw.stored_blobs() == []
