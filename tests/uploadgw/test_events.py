"""Events leave through the outbox: committed with the change, relayed to the Redis stream."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from gatehouse.events.v1 import event_pb2
from tests import eventkeys
from tests.uploadgw.conftest import make_uploader
from tests.uploadgw.dists import make_wheel
from tests.uploadgw.http_support import post_upload


@pytest.fixture
def gw_overrides(redis_server, stream_name):
    return {"redis_url": redis_server.url, "event_stream": stream_name}


@pytest.fixture
def auth_overrides():
    return {}


async def test_upload_events_reach_the_stream(gw, tmp_path, redis_server, stream_name):
    """Seed workflow: upload with a token and see it in the project's log (the audit consumer's input)."""
    up = await make_uploader(gw.auth)
    wheel = make_wheel(tmp_path, "streamed-pkg", "1.0")
    assert (await post_upload(gw, wheel, up.token))[0] == 200
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        for _ in range(100):
            entries = await client.xrange(stream_name)
            if len(entries) >= 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()
    events = []
    for _entry_id, fields in entries:
        event = event_pb2.Event()
        opened = eventkeys.VERIFIER.open(fields[b"event"])  # sealed with the gateway's own key
        assert opened.producer == "uploadgw"
        event.ParseFromString(opened.event)
        events.append(event)
    assert [e.tag for e in events] == ["project:release:add", "file:add"]
    file_add = events[1]
    assert file_add.source == "uploadgw" and file_add.project_name == "streamed-pkg"
    assert file_add.details["token_id"] == up.token_id and file_add.details["filename"] == wheel.name
    assert file_add.actor.user_id and file_add.actor.username == up.username


class TestProjectDeletedInAuthsvc:
    """authsvc's `project:delete` event, relayed to the stream, removes the project's files here."""

    @pytest.fixture
    def auth_overrides(self, redis_server, stream_name):
        return {"relay_enabled": True, "redis_url": redis_server.url, "event_stream": stream_name}

    async def test_files_go_without_anyone_calling_the_gateway(self, gw, tmp_path):
        from gatehouse.auth.v1 import admin_pb2
        from uploadgw.app import LISTENER

        up = await make_uploader(gw.auth, own=["doomed-pkg"])
        for version in ("1.0", "2.0"):
            assert (await post_upload(gw, make_wheel(tmp_path, "doomed-pkg", version), up.token))[0] == 200
        kept = make_wheel(tmp_path, "kept-pkg", "1.0")
        assert (await post_upload(gw, kept, up.token))[0] == 200
        await gw.auth.admin.DeleteProject(admin_pb2.AdminDeleteProjectRequest(project_name="doomed-pkg"))
        listener = gw.running.app[LISTENER]
        for _ in range(200):
            if listener.purged:
                break
            await asyncio.sleep(0.05)
        assert listener.purged == 1
        async with gw.http.get(gw.url + "/simple/doomed-pkg/") as resp:
            assert resp.status == 404
        assert len(await gw.stored_blobs()) == 1

    async def test_a_forged_deletion_of_a_live_project_removes_nothing(self, gw, tmp_path, redis_server,
                                                                       stream_name):
        """Anyone who can XADD could write a project:delete; the gateway asks authsvc before purging."""
        from uploadgw.app import LISTENER

        up = await make_uploader(gw.auth, own=["target-pkg"])
        assert (await post_upload(gw, make_wheel(tmp_path, "target-pkg", "1.0"), up.token))[0] == 200
        [added] = await gw.events("file:add")
        forged = event_pb2.Event(event_id="forged-1", schema_version=1, tag="project:delete", source="authsvc",
                                 project_id=added.project_id, project_name="target-pkg")
        client = aioredis.Redis.from_url(redis_server.url)
        try:
            await client.xadd(stream_name, {"event_id": "forged-1", "tag": "project:delete",
                                            "event": forged.SerializeToString()})
        finally:
            await client.aclose()
        listener = gw.running.app[LISTENER]
        for _ in range(200):
            if listener.purged or getattr(listener, "ignored", 0):
                break
            await asyncio.sleep(0.05)
        assert listener.purged == 0 and listener.ignored == 1
        async with gw.http.get(gw.url + "/simple/target-pkg/") as resp:
            assert resp.status == 200
        assert len(await gw.stored_blobs()) == 1
