"""One Redis stream consumer group, as every consumer and relay here uses it.

`ConsumerGroup` is one consumer's side of a group: it creates the group (and the stream) when
missing, reads new entries, re-reads its own pending entries after a failure, claims entries left
idle by dead consumers (XAUTOCLAIM), removes consumers that died (idle longer than the expiry, with
nothing pending), dead-letters an entry after its delivery limit and trims what every group
acknowledged. `Outage` paces retries (capped exponential back-off) and logs an outage once when it
starts and once when it ends, for consumers and the outbox relay alike.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError, ResponseError
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

# A stream entry as redis-py returns it: (entry id, fields); fields are empty when the entry was
# deleted from the stream while pending.
Entry = tuple[bytes, dict[bytes, bytes]]
# Handles a batch of entries (acknowledging what it settled); returns how many it handled.
Handler = Callable[[list[Entry]], Awaitable[int]]

# Errors that mean "a dependency is away" (retry with back-off), not "this data is bad".
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, SQLAlchemyError)

# In one atomic step (XGROUP DELCONSUMER drops a consumer's pending entries, so none may be read
# between the check and the removal): mark ARGV[3] (the caller) as alive, then remove the group's
# other consumers idle for ARGV[2] ms or more with nothing pending. Returns {removed names, how
# many idle ones still hold entries}. The mark is a history read from the group's last delivered
# id, which serves nothing but refreshes the caller's idle time (Redis 6.2 refreshes it only when
# a read serves a stream, so a live consumer waiting on a quiet stream would look dead).
REMOVE_DEAD_CONSUMERS_SCRIPT = """
local function fields(flat)
  local info = {}
  for i = 1, #flat, 2 do info[flat[i]] = flat[i + 1] end
  return info
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('NOGROUP the stream is gone, and its consumer group with it')
end
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = fields(group)
  if info['name'] == ARGV[1] then
    redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[3], 'COUNT', 1, 'STREAMS', KEYS[1], info['last-delivered-id'])
  end
end
local removed, holding = {}, 0
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = fields(consumer)
  if info['name'] ~= ARGV[3] and info['idle'] >= tonumber(ARGV[2]) then
    if info['pending'] == 0 then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
      removed[#removed + 1] = info['name']
    else
      holding = holding + 1
    end
  end
end
return {removed, holding}
"""


def connect_redis(url: str, *, socket_timeout: float = 10.0) -> aioredis.Redis:
    """A client that fails fast (no hidden retries) so that callers run their own back-off."""
    return aioredis.Redis.from_url(
        url, socket_connect_timeout=2.0, socket_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 0), decode_responses=False,
    )


class Backoff:
    """Capped exponential back-off with jitter; `reset()` after a success."""

    def __init__(self, initial: float, maximum: float):
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay * random.uniform(0.8, 1.0)

    def reset(self) -> None:
        self._next = self.initial


class Outage:
    """A worker's outages: logged once when one starts (naming what is away) and once when it ends
    (with its length), retries paced by a `Backoff` in between, so a long outage is two log lines."""

    def __init__(self, logger: logging.Logger, context: dict[str, object], *, failing: str, recovered: str,
                 backoff: Backoff):
        self._log = logger
        self._context = context
        self._failing = failing
        self._recovered = recovered
        self.backoff = backoff
        self.started: float | None = None

    def failed(self, exc: BaseException | None) -> None:
        """Count a failed round; `exc` None: an unexpected error the caller logged itself."""
        if self.started is None:
            self.started = time.monotonic()
            if exc is not None:
                what = "database" if isinstance(exc, SQLAlchemyError) else "redis"
                self._log.warning(self._failing, extra={**self._context, "unavailable": what,
                                                        "error": f"{type(exc).__name__}: {exc}"[:300]})

    def recovered(self) -> None:
        """A round succeeded: log the end of an outage, if any, and restart the back-off."""
        if self.started is not None:
            self._log.info(self._recovered, extra={
                **self._context, "outage_seconds": round(time.monotonic() - self.started, 3)})
            self.started = None
        self.backoff.reset()

    async def pause(self, stop: asyncio.Event) -> None:
        """Wait the next back-off delay, or until `stop` is set."""
        try:
            await asyncio.wait_for(stop.wait(), self.backoff.next_delay())
        except asyncio.TimeoutError:
            pass


class ConsumerGroup:
    """One consumer (`consumer`) of the group `group` on `stream`; see the module docstring.

    `handle` callbacks receive entries and acknowledge what they settle (`ack`); an entry they
    leave pending comes back through `drain_pending` (after a failure) or `claim` (once idle).
    """

    def __init__(self, redis_url: str | None, stream: str, group: str, consumer: str, *,
                 redis: aioredis.Redis | None = None, socket_timeout: float = 10.0, batch_size: int = 500,
                 claim_idle_ms: int = 60_000, consumer_expiry_ms: int = 3_600_000,
                 max_deliveries: int = 5, dead_letter_stream: str | None = None):
        if redis is None and not redis_url:
            raise ValueError("a consumer group needs a Redis URL or client")
        self._redis_url = redis_url
        self._client = redis
        self.owns_client = redis is None
        self._socket_timeout = socket_timeout
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.batch_size = batch_size
        self.claim_idle_ms = claim_idle_ms
        self.consumer_expiry_ms = consumer_expiry_ms
        self.max_deliveries = max_deliveries
        self.dead_letter_stream = dead_letter_stream or f"{stream}:dead-letter"
        self._claim_every = min(max(claim_idle_ms / 2000, 0.05), 30.0)
        self._cleanup_every = min(max(consumer_expiry_ms / 4000, 0.05), 60.0)
        self._next_claim = 0.0
        self._next_cleanup = 0.0
        self._remove_script: AsyncScript | None = None
        self.ready = False          # the group is known to exist
        self.pending_unchecked = True  # own pending entries may exist: re-read them first
        self.claimed = 0            # entries taken over with XAUTOCLAIM

    def redis(self) -> aioredis.Redis:
        if self._client is None:
            assert self._redis_url is not None  # checked in __init__
            self._client = connect_redis(self._redis_url, socket_timeout=self._socket_timeout)
        return self._client

    async def close(self) -> None:
        if self._client is not None and self.owns_client:
            await self._client.aclose()
            self._client = None
            self._remove_script = None

    async def ensure(self) -> None:
        """Create the group (and the stream) if missing, from the stream's very first entry (an
        entry added before the group existed is not missed)."""
        try:
            await self.redis().xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self.ready = True

    def failed(self, exc: BaseException | None) -> None:
        """A round failed: whatever was read but not acknowledged is ours to redo; a lost stream
        (Redis without persistence) means the group must be created again."""
        self.pending_unchecked = True
        if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
            self.ready = False

    # -- reading -------------------------------------------------------------------------------

    async def read_new(self, block_ms: int | None) -> list[Entry]:
        """New entries for this consumer, waiting up to `block_ms` (None or 0: don't wait)."""
        reply = await self.redis().xreadgroup(self.group, self.consumer, {self.stream: ">"},
                                              count=self.batch_size, block=block_ms or None)
        return _entries(reply)

    def maintenance_due(self) -> bool:
        now = time.monotonic()
        return (not self.ready or self.pending_unchecked or now >= self._next_claim
                or now >= self._next_cleanup)

    async def maintain(self, handle: Handler) -> int:
        """Group creation, dead consumers (when due), own pending entries (when unchecked), idle
        entries of others (when due). Returns how many entries `handle` was given."""
        if not self.ready:
            await self.ensure()
        handled = 0
        if time.monotonic() >= self._next_cleanup:  # first: it marks this consumer alive
            await self.remove_dead_consumers(handle)
            self._next_cleanup = time.monotonic() + self._cleanup_every
        if self.pending_unchecked:
            handled += await self.drain_pending(handle)
            self.pending_unchecked = False
        if time.monotonic() >= self._next_claim:
            handled += await self.claim(handle)
            self._next_claim = time.monotonic() + self._claim_every
        return handled

    async def drain_pending(self, handle: Handler) -> int:
        """Re-read and handle the entries delivered to this consumer but never acknowledged."""
        handled, last = 0, b"0"
        while True:
            reply = await self.redis().xreadgroup(self.group, self.consumer, {self.stream: last},
                                                  count=self.batch_size)
            entries = _entries(reply)
            if not entries:
                return handled
            handled += await handle(entries)
            last = entries[-1][0]

    async def claim(self, handle: Handler, max_rounds: int = 10) -> int:
        """Take over entries pending longer than `claim_idle_ms` (dead consumers, earlier failures)."""
        handled, start = 0, b"0-0"
        for _ in range(max_rounds):
            reply = await self.redis().xautoclaim(self.stream, self.group, self.consumer, self.claim_idle_ms,
                                                  start_id=start, count=self.batch_size)
            next_id: bytes = reply[0]
            claimed: list[Entry] = [e for e in reply[1] if e[0] is not None]
            if len(claimed) < len(reply[1]):
                # Redis 6.2 claims entries deleted from the stream without naming them; they are
                # now in our own pending list, where the next drain acknowledges them.
                self.pending_unchecked = True
            if claimed:
                self.claimed += len(claimed)
                log.info("claimed idle stream entries",
                         extra={"consumer": self.consumer, "stream": self.stream, "count": len(claimed)})
                handled += await handle(claimed)
            if next_id in (b"0-0", "0-0"):
                break
            start = next_id
        return handled

    async def remove_dead_consumers(self, handle: Handler) -> list[str]:
        """Remove the group's consumers idle longer than `consumer_expiry_ms` with nothing pending
        (their processes are gone: a live one marks itself alive here, every quarter of that time).
        A dead one still holding entries has them claimed first (`claim`), then goes."""
        if self._remove_script is None:
            self._remove_script = self.redis().register_script(REMOVE_DEAD_CONSUMERS_SCRIPT)
        args: list[str | int] = [self.group, self.consumer_expiry_ms, self.consumer]
        removed, holding = await self._remove_script(keys=[self.stream], args=args)
        if holding:
            await self.claim(handle)
            more, _ = await self._remove_script(keys=[self.stream], args=args)
            removed = [*removed, *more]
        names = [n.decode("utf-8", "replace") for n in removed]
        if names:
            log.info("removed dead consumers from the group",
                     extra={"stream": self.stream, "group": self.group, "consumers": names})
        return names

    # -- settling ------------------------------------------------------------------------------

    async def ack(self, *entry_ids: bytes) -> int:
        if not entry_ids:
            return 0
        return int(await self.redis().xack(self.stream, self.group, *entry_ids))

    async def failed_entry(self, entry_id: bytes, fields: dict[bytes, bytes], reason: str) -> str:
        """An entry that could not be handled: left pending for a later delivery ("retry") until
        its `max_deliveries`-th, then moved to the dead-letter stream with the reason and
        acknowledged ("dead"); "settled" when no longer pending (another consumer settled it)."""
        reason = reason.encode("utf-8", "backslashreplace").decode("utf-8")[:300]
        redis = self.redis()
        info = await redis.xpending_range(self.stream, self.group, min=entry_id, max=entry_id, count=1)
        if not info:
            return "settled"
        deliveries = int(info[0]["times_delivered"])
        context = {"stream": self.stream, "entry_id": entry_id.decode(), "reason": reason,
                   "deliveries": deliveries}
        if deliveries < self.max_deliveries:
            log.warning("stream entry not handled; it will be retried", extra=context)
            return "retry"
        dead: dict[bytes, bytes] = {k: v for k, v in fields.items() if not k.startswith(b"dlq_")}
        dead.update({b"dlq_reason": reason.encode(), b"dlq_entry_id": entry_id,
                     b"dlq_deliveries": str(deliveries).encode(), b"dlq_group": self.group.encode(),
                     b"dlq_consumer": self.consumer.encode()})
        async with redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.dead_letter_stream, dead)  # type: ignore[arg-type]  # bytes keys are fine
            pipe.xack(self.stream, self.group, entry_id)
            await pipe.execute()
        log.error("stream entry moved to the dead-letter stream",
                  extra={**context, "dead_letter_stream": self.dead_letter_stream})
        return "dead"

    async def trim(self) -> int:
        return await trim_acknowledged(self.redis(), self.stream)


def _entries(reply: Any) -> list[Entry]:
    return [entry for _stream, entries in reply or [] for entry in entries]


def _parse_id(raw: bytes | str) -> tuple[int, int]:
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


async def trim_acknowledged(redis: aioredis.Redis, stream: str) -> int:
    """Drop the entries that EVERY consumer group of `stream` has acknowledged; return how many.

    For each group the bound is its oldest pending entry, or (when nothing is pending) the entry
    after its last delivered one; the stream is trimmed with XTRIM MINID at the lowest bound. A
    stream without any group is left alone. Bounds only move forward, so a group advancing
    while this runs just makes the trim more conservative.
    """
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:  # no such stream
        return 0
    if not groups:
        return 0
    bound: tuple[int, int] | None = None
    for group in groups:
        if int(group["pending"]):
            summary = await redis.xpending(stream, group["name"])
            if not summary or summary.get("min") is None:
                return 0
            group_bound = _parse_id(summary["min"])
        else:
            ms, seq = _parse_id(group["last-delivered-id"])
            group_bound = (ms, seq + 1)
        if group_bound <= (0, 0) or group_bound == (0, 1):
            return 0
        bound = group_bound if bound is None else min(bound, group_bound)
    assert bound is not None
    return int(await redis.xtrim(stream, minid=f"{bound[0]}-{bound[1]}", approximate=False))
