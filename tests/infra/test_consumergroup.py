"""The shared consumer-group helper against real redis-server processes."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gatehouse.infra.consumergroup import Backoff, ConsumerGroup, Entry, Outage

GROUP = "g"


async def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := await predicate()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval)
    return value


class Acker:
    """A handler that acknowledges everything it is given and remembers the entry ids."""

    def __init__(self, member: ConsumerGroup):
        self.member = member
        self.seen: list[bytes] = []

    async def __call__(self, entries: list[Entry]) -> int:
        self.seen += [entry_id for entry_id, _ in entries]
        await self.member.ack(*[entry_id for entry_id, _ in entries])
        return len(entries)


async def consumers(client, stream) -> dict[bytes, int]:
    return {c["name"]: c["pending"] for c in await client.xinfo_consumers(stream, GROUP)}


@pytest.fixture
async def client(redis_server):
    c = aioredis.Redis.from_url(redis_server.url)
    yield c
    await c.aclose()


async def test_a_killed_consumer_has_its_entries_claimed_then_leaves_the_group(redis_server, client, stream_name,
                                                                                tmp_path, repo_root):
    """Guards issue 19: a consumer whose process died stayed in the group for good."""
    ids = [await client.xadd(stream_name, {"n": str(i)}) for i in range(5)]
    marker = tmp_path / "read"
    proc = subprocess.Popen([sys.executable, "-m", "tests.infra._dying_reader", redis_server.url, stream_name,
                             GROUP, "dead", "3", str(marker)], cwd=repo_root)
    try:
        await wait_for(lambda: asyncio.sleep(0, marker.exists() and marker.read_text()), timeout=30)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (await consumers(client, stream_name))[b"dead"] == 3
    live = ConsumerGroup(redis_server.url, stream_name, GROUP, "live", claim_idle_ms=200, consumer_expiry_ms=400)
    handle = Acker(live)
    try:
        async def only_live() -> bool:
            await live.maintain(handle)
            await handle(await live.read_new(20))
            return set(await consumers(client, stream_name)) == {b"live"}
        await wait_for(only_live)
    finally:
        await live.close()
    # Nothing the dead one held was dropped: it was claimed and handled before the removal.
    assert sorted(handle.seen) == sorted(ids) and len(handle.seen) == len(set(handle.seen))
    assert live.claimed == 3
    assert (await client.xpending(stream_name, GROUP))["pending"] == 0


async def test_a_live_consumer_on_a_quiet_stream_is_not_removed(redis_server, client, stream_name):
    first = ConsumerGroup(redis_server.url, stream_name, GROUP, "first", consumer_expiry_ms=300)
    second = ConsumerGroup(redis_server.url, stream_name, GROUP, "second", consumer_expiry_ms=300)
    try:
        for _ in range(12):  # each maintains itself well within the expiry; nobody reads anything
            for member in (first, second):
                await member.maintain(Acker(member))
            await asyncio.sleep(0.1)
        assert set(await consumers(client, stream_name)) == {b"first", b"second"}
    finally:
        await first.close()
        await second.close()


async def test_an_entry_is_retried_then_dead_lettered_with_its_reason(redis_server, client, stream_name):
    member = ConsumerGroup(redis_server.url, stream_name, GROUP, "c", claim_idle_ms=0, max_deliveries=3)
    entry_id = await client.xadd(stream_name, {"event": b"\xff\x00"})
    outcomes = []

    async def refuse(entries: list[Entry]) -> int:
        for eid, fields in entries:
            outcomes.append(await member.failed_entry(eid, fields, "not an event"))
        return len(entries)
    try:
        await member.ensure()
        await refuse(await member.read_new(None))
        await member.claim(refuse)
        await member.claim(refuse)
        assert await member.failed_entry(entry_id, {}, "again") == "settled"
    finally:
        await member.close()
    assert outcomes == ["retry", "retry", "dead"]
    [(_, dead)] = await client.xrange(member.dead_letter_stream)
    assert dead[b"event"] == b"\xff\x00" and dead[b"dlq_reason"] == b"not an event"
    assert dead[b"dlq_entry_id"] == entry_id and dead[b"dlq_deliveries"] == b"3"
    assert (await client.xpending(stream_name, GROUP))["pending"] == 0


async def test_a_lost_stream_gets_its_group_again(own_redis, stream_name):
    member = ConsumerGroup(own_redis.url, stream_name, GROUP, "c")
    try:
        await member.ensure()
        await member.ensure()  # an existing group is fine
        plain = aioredis.Redis.from_url(own_redis.url)
        await plain.delete(stream_name)
        await plain.aclose()
        with pytest.raises(RedisError) as err:
            await member.read_new(None)
        member.failed(err.value)
        assert not member.ready and member.maintenance_due()
        await member.maintain(Acker(member))
        assert member.ready and await member.read_new(None) == []
    finally:
        await member.close()


async def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(own_redis, caplog):
    caplog.set_level(logging.INFO, logger="tests.outage")
    outage = Outage(logging.getLogger("tests.outage"), {"worker": "w"}, failing="worker stuck",
                    recovered="worker running again", backoff=Backoff(0.01, 0.04))
    member = ConsumerGroup(own_redis.url, "s", GROUP, "c")
    own_redis.kill()
    for _ in range(4):
        try:
            await member.ensure()
        except RedisError as exc:
            outage.failed(exc)
            await outage.pause(asyncio.Event())
    delays = [outage.backoff.next_delay() for _ in range(2)]
    own_redis.start()
    await member.ensure()
    outage.recovered()
    await member.close()
    records = [r for r in caplog.records if r.name == "tests.outage"]
    assert [r.getMessage() for r in records] == ["worker stuck", "worker running again"]
    assert records[0].unavailable == "redis" and "outage_seconds" in vars(records[1])
    assert all(0.03 <= d <= 0.04 for d in delays)  # capped back-off ...
    assert outage.backoff.next_delay() <= 0.01      # ... restarted by the recovery
