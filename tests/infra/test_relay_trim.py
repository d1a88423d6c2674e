"""Stream trimming never drops an entry that some consumer group has not acknowledged."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from gatehouse.infra.relay import trim_acknowledged


@pytest.fixture
async def client(redis_server):
    c = aioredis.Redis.from_url(redis_server.url)
    yield c
    await c.aclose()


async def fill(client, stream, n=10) -> list[bytes]:
    return [await client.xadd(stream, {"n": str(i)}) for i in range(n)]


async def read(client, stream, group, consumer, count) -> list[bytes]:
    reply = await client.xreadgroup(group, consumer, {stream: ">"}, count=count)
    return [entry_id for _s, entries in reply for entry_id, _f in entries]


async def test_keeps_pending_entries_and_drops_acknowledged_ones(client, stream_name):
    ids = await fill(client, stream_name)
    await client.xgroup_create(stream_name, "g", id="0")
    delivered = await read(client, stream_name, "g", "c1", 6)
    await client.xack(stream_name, "g", delivered[0], delivered[1], delivered[2], delivered[4])
    # Pending: ids[3] and ids[5]; never delivered: ids[6:].
    assert await trim_acknowledged(client, stream_name) == 3
    remaining = [i for i, _ in await client.xrange(stream_name)]
    assert remaining == ids[3:]
    # The pending entries can still be claimed, with their fields, by another consumer.
    claimed = await client.xclaim(stream_name, "g", "c2", 0, [ids[3], ids[5]])
    assert [entry_id for entry_id, _ in claimed] == [ids[3], ids[5]]
    assert all(fields for _, fields in claimed)


async def test_everything_acknowledged_is_dropped(client, stream_name):
    await fill(client, stream_name, 5)
    await client.xgroup_create(stream_name, "g", id="0")
    delivered = await read(client, stream_name, "g", "c1", 10)
    await client.xack(stream_name, "g", *delivered)
    assert await trim_acknowledged(client, stream_name) == 5
    assert await client.xlen(stream_name) == 0
    new = await client.xadd(stream_name, {"n": "late"})
    assert await read(client, stream_name, "g", "c1", 10) == [new]


async def test_the_slowest_group_bounds_the_trim(client, stream_name):
    ids = await fill(client, stream_name, 8)
    await client.xgroup_create(stream_name, "fast", id="0")
    await client.xgroup_create(stream_name, "slow", id="0")
    await client.xack(stream_name, "fast", *await read(client, stream_name, "fast", "c", 8))
    assert await trim_acknowledged(client, stream_name) == 0  # "slow" has read nothing
    await client.xack(stream_name, "slow", *await read(client, stream_name, "slow", "c", 3))
    assert await trim_acknowledged(client, stream_name) == 3
    assert [i for i, _ in await client.xrange(stream_name)] == ids[3:]


async def test_a_stream_without_groups_or_without_a_key_is_left_alone(client, stream_name):
    await fill(client, stream_name, 3)
    assert await trim_acknowledged(client, stream_name) == 0
    assert await client.xlen(stream_name) == 3
    assert await trim_acknowledged(client, stream_name + ":missing") == 0
