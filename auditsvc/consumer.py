"""The stream consumer: Redis consumer group -> `AuditLog.ingest` -> XACK, losing nothing.

Entries are read in batches with XREADGROUP, authenticated (the producer's seal, see
gatehouse.infra.eventauth), decoded (gatehouse.events.v1.Event), stored in one
transaction (idempotent by event id) and acknowledged only after the commit. At start, and after
any outage, the consumer first re-reads its own pending entries; entries left pending by a dead
consumer are claimed with XAUTOCLAIM once idle for `claim_idle_ms`. An entry that cannot be
authenticated, decoded or stored, whatever the error, is retried through the same claim path and,
after `max_deliveries` deliveries, moved to the dead-letter stream (original fields plus the reason)
and acknowledged, so the rest keeps flowing; the other entries of its batch are stored meanwhile
(a batch the store refuses while the database answers is stored event by event). Redis or
database down: back off and retry (no entry is dead-lettered for an outage); never crash.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from google.protobuf.message import DecodeError
from redis.exceptions import RedisError, ResponseError
from sqlalchemy.exc import SQLAlchemyError

from auditsvc.store.records import EventRecord, IngestResult
from auditsvc.store.service import AuditLog
from gatehouse.events.v1 import event_pb2
from gatehouse.infra.eventauth import EventAuthError, EventVerifier
from gatehouse.infra.relay import Backoff, connect_redis, trim_acknowledged

log = logging.getLogger(__name__)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_KINDS = {event_pb2.Actor.USER: "user", event_pb2.Actor.OPERATOR: "operator",
          event_pb2.Actor.SYSTEM: "system", event_pb2.Actor.ANONYMOUS: "anonymous"}


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


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


class PoisonEntry(Exception):
    """A stream entry that is not a usable event (the reason says why)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def decode_entry(fields: dict, verifier: EventVerifier) -> EventRecord:
    """A stream entry's fields -> EventRecord, or PoisonEntry (unauthenticated entries included)."""
    payload = fields.get(b"event")
    if payload is None:
        raise PoisonEntry("the entry has no 'event' field")
    try:
        opened = verifier.open(payload)
    except EventAuthError as exc:
        raise PoisonEntry(f"unauthenticated: {exc.reason}") from None
    try:
        event = event_pb2.Event.FromString(opened.event)
    except (DecodeError, ValueError) as exc:
        raise PoisonEntry(f"not a gatehouse.events.v1.Event: {exc}"[:200]) from None
    if not event.event_id or len(event.event_id) > 64 or not event.event_id.isprintable():
        raise PoisonEntry("the event has no valid event_id")
    outer = fields.get(b"event_id")
    if outer is not None and outer.decode("utf-8", "replace") != event.event_id:
        raise PoisonEntry("the entry's event_id does not match its event")
    if not event.tag:
        raise PoisonEntry("the event has no tag")
    if event.source != opened.producer:
        raise PoisonEntry(f"unauthenticated: an event from {event.source[:40]!r} sealed with "
                          f"{opened.producer}'s key")
    occurred = None
    if event.HasField("occurred_at"):
        stamp = event.occurred_at
        occurred = _EPOCH + dt.timedelta(seconds=stamp.seconds, microseconds=stamp.nanos // 1000)
    return EventRecord(
        event_id=event.event_id, tag=event.tag, occurred_at=occurred, source=event.source,
        actor_kind=_KINDS.get(event.actor.kind, "unspecified"), actor_user_id=event.actor.user_id,
        actor_username=event.actor.username, subject_user_id=event.subject_user_id,
        subject_username=event.subject_username, project_id=event.project_id,
        project_name=event.project_name, ip=event.ip_address, user_agent=event.user_agent,
        details=dict(event.details),
    )


@dataclasses.dataclass
class ConsumerStats:
    delivered: int = 0      # entries handed to this consumer (incl. redeliveries)
    stored: int = 0         # events newly stored
    duplicates: int = 0     # events that were already stored (redelivery, relay duplicate)
    acked: int = 0
    retried: int = 0        # failures left pending for a later delivery
    dead_lettered: int = 0
    claimed: int = 0        # entries taken over with XAUTOCLAIM


# Called with the event ids just committed, before they are acknowledged (tests, benchmarks).
AfterCommit = Callable[[list[str]], Awaitable[None]]


class Consumer:
    def __init__(
        self,
        redis_url: str | None,
        stream: str,
        group: str,
        name: str,
        log_store: AuditLog,
        *,
        verifier: EventVerifier,
        redis: aioredis.Redis | None = None,
        batch_size: int = 500,
        block_ms: int = 1000,
        claim_idle_ms: int = 60_000,
        max_deliveries: int = 5,
        consumer_expiry_ms: int = 3_600_000,
        dead_letter_stream: str | None = None,
        trim_interval: float = 60.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        max_inflight: int = 2,
        after_commit: AfterCommit | None = None,
    ):
        if redis is None and not redis_url:
            raise ValueError("Consumer needs a Redis URL or client")
        self._redis_url = redis_url
        self._client = redis
        self._owns_client = redis is None
        self.stream = stream
        self.group = group
        self.name = name
        self.store = log_store
        self.verifier = verifier
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.max_deliveries = max_deliveries
        self.consumer_expiry_ms = consumer_expiry_ms
        self._cleanup_every = min(max(consumer_expiry_ms / 4000, 0.05), 60.0)
        self._next_cleanup = 0.0
        self._remove_script = None
        self.dead_letter_stream = dead_letter_stream or f"{stream}:dead-letter"
        self.trim_interval = trim_interval
        self.max_inflight = max(1, max_inflight)
        self._claim_every = min(max(claim_idle_ms / 2000, 0.05), 30.0)
        self._backoff = Backoff(backoff_initial, backoff_max)
        self._after_commit = after_commit
        self._group_ready = False
        self._pending_unchecked = True
        self._next_claim = 0.0
        self._outage_started: float | None = None
        self.stats = ConsumerStats()

    @classmethod
    def from_settings(cls, settings, log_store: AuditLog, **overrides) -> "Consumer":
        options = dict(
            batch_size=settings.batch_size, block_ms=settings.block_ms,
            claim_idle_ms=settings.claim_idle_ms, max_deliveries=settings.max_deliveries,
            consumer_expiry_ms=settings.consumer_expiry_ms,
            dead_letter_stream=settings.dead_letter_stream, trim_interval=settings.trim_interval_seconds,
            verifier=EventVerifier(settings.event_keys),
        )
        options.update(overrides)
        name = options.pop("name", settings.consumer_name)
        return cls(settings.redis_url, settings.event_stream, settings.consumer_group, name, log_store,
                   **options)

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            self._client = connect_redis(self._redis_url, socket_timeout=max(10.0, self.block_ms / 1000 + 5))
        return self._client

    async def close(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    async def ensure_group(self) -> None:
        """Create the group (and the stream) if missing, reading from the very first entry."""
        try:
            await self._redis().xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    # -- one round -----------------------------------------------------------------------------

    async def consume_once(self, block_ms: int | None = None) -> int:
        """Own pending entries (when unchecked), idle entries of others (when due), then new ones.

        `block_ms`: wait this long for new entries (default: the configured block; 0 = don't
        wait). Returns the number of entries handled.
        """
        handled = await self._maintenance()
        return handled + await self._process(await self._read_new(block_ms))

    async def _maintenance(self) -> int:
        if not self._group_ready:
            await self.ensure_group()
        handled = 0
        if time.monotonic() >= self._next_cleanup:  # first: it marks this consumer alive
            await self.remove_dead_consumers()
            self._next_cleanup = time.monotonic() + self._cleanup_every
        if self._pending_unchecked:
            handled += await self.drain_pending()
            self._pending_unchecked = False
        if time.monotonic() >= self._next_claim:
            handled += await self.claim_once()
            self._next_claim = time.monotonic() + self._claim_every
        return handled

    def _maintenance_due(self) -> bool:
        now = time.monotonic()
        return (not self._group_ready or self._pending_unchecked or now >= self._next_claim
                or now >= self._next_cleanup)

    async def _read_new(self, block_ms: int | None = None) -> list:
        block = self.block_ms if block_ms is None else block_ms
        reply = await self._redis().xreadgroup(self.group, self.name, {self.stream: ">"},
                                               count=self.batch_size, block=block or None)
        return [entry for _stream, entries in reply or [] for entry in entries]

    async def drain_pending(self) -> int:
        """Re-read and handle the entries delivered to this consumer name but never acknowledged."""
        handled, last = 0, "0"
        while True:
            reply = await self._redis().xreadgroup(self.group, self.name, {self.stream: last},
                                                   count=self.batch_size)
            entries = [e for _s, batch in reply or [] for e in batch]
            if not entries:
                return handled
            handled += await self._process(entries)
            last = entries[-1][0]

    async def claim_once(self, max_rounds: int = 10) -> int:
        """Take over entries pending longer than `claim_idle_ms` (dead consumers, earlier failures)."""
        handled, start = 0, "0-0"
        for _ in range(max_rounds):
            reply = await self._redis().xautoclaim(self.stream, self.group, self.name, self.claim_idle_ms,
                                                   start_id=start, count=self.batch_size)
            next_id, claimed = reply[0], [e for e in reply[1] if e[0] is not None]
            if len(claimed) < len(reply[1]):
                # Redis 6.2 claims entries deleted from the stream without naming them; they are
                # now in our own pending list, where the next drain acknowledges them.
                self._pending_unchecked = True
            if claimed:
                self.stats.claimed += len(claimed)
                log.info("claimed idle stream entries",
                         extra={"consumer": self.name, "stream": self.stream, "count": len(claimed)})
                handled += await self._process(claimed)
            if next_id in (b"0-0", "0-0"):
                break
            start = next_id
        return handled

    async def remove_dead_consumers(self) -> list[str]:
        """Remove the group's consumers idle longer than `consumer_expiry_ms` with nothing pending
        (their processes are gone: a live one marks itself alive here, every quarter of that time).
        A dead one still holding entries has them claimed first (`claim_once`), then goes."""
        redis = self._redis()
        if self._remove_script is None:
            self._remove_script = redis.register_script(REMOVE_DEAD_CONSUMERS_SCRIPT)
        args = [self.group, self.consumer_expiry_ms, self.name]
        removed, holding = await self._remove_script(keys=[self.stream], args=args)
        if holding:
            await self.claim_once()
            more, _ = await self._remove_script(keys=[self.stream], args=args)
            removed = [*removed, *more]
        names = [n.decode("utf-8", "replace") for n in removed]
        if names:
            log.info("removed dead consumers from the group",
                     extra={"stream": self.stream, "group": self.group, "consumers": names})
        return names

    async def trim_once(self) -> int:
        return await trim_acknowledged(self._redis(), self.stream)

    # -- handling ------------------------------------------------------------------------------

    async def _process(self, entries: list) -> int:
        if not entries:
            return 0
        self.stats.delivered += len(entries)
        fields_by_id, good, bad, gone = {}, [], [], []
        for entry_id, fields in entries:
            if not fields:  # deleted from the stream while pending: nothing left to store
                gone.append(entry_id)
                continue
            fields_by_id[entry_id] = fields
            try:
                good.append((entry_id, decode_entry(fields, self.verifier)))
            except PoisonEntry as exc:
                bad.append((entry_id, exc.reason))
            except Exception as exc:  # noqa: BLE001 - one entry's bytes must not stop the others
                bad.append((entry_id, _reason(exc)))
        stored_ids: list[bytes] = []
        if good:
            result = await self._store([record for _, record in good])
            self.stats.stored += len(result.inserted)
            for entry_id, record in good:
                if record.event_id in result.rejected:
                    bad.append((entry_id, result.rejected[record.event_id]))
                else:
                    stored_ids.append(entry_id)
            self.stats.duplicates += len(stored_ids) - len(result.inserted)
            if stored_ids and self._after_commit is not None:
                await self._after_commit([record.event_id for _, record in good
                                          if record.event_id not in result.rejected])
        if stored_ids or gone:
            self.stats.acked += await self._redis().xack(self.stream, self.group, *stored_ids, *gone)
        if gone:
            log.warning("pending entries no longer in the stream were acknowledged",
                        extra={"stream": self.stream, "count": len(gone)})
        for entry_id, reason in bad:
            await self._failed_entry(entry_id, fields_by_id[entry_id], reason)
        return len(entries)

    async def _store(self, records: list[EventRecord]) -> IngestResult:
        """Store the batch; if it fails and the database is up, store it event by event, so that
        an event which breaks the store is isolated (rejected, with the reason) and the rest is kept."""
        try:
            return await self.store.ingest(records)
        except Exception as exc:  # noqa: BLE001 - sorted into outage or poison below
            if await self._is_outage(exc):
                raise
            if len(records) == 1:
                return IngestResult(set(), {records[0].event_id: _reason(exc)})
        inserted: set[str] = set()
        rejected: dict[str, str] = {}
        for record in records:
            try:
                result = await self.store.ingest([record])
            except Exception as exc:  # noqa: BLE001
                if await self._is_outage(exc):
                    raise
                rejected[record.event_id] = _reason(exc)
            else:
                inserted |= result.inserted
                rejected.update(result.rejected)
        return IngestResult(inserted, rejected)

    async def _is_outage(self, exc: Exception) -> bool:
        """Redis or the database away (retry later, no delivery counted), not this batch's data."""
        if isinstance(exc, (RedisError, OSError)):
            return True
        if isinstance(exc, SQLAlchemyError):
            try:
                await self.store.ping()
            except Exception:  # noqa: BLE001 - the database does not answer: an outage
                return True
        return False

    async def _failed_entry(self, entry_id: bytes, fields: dict, reason: str) -> None:
        reason = reason.encode("utf-8", "backslashreplace").decode("utf-8")[:300]
        redis = self._redis()
        info = await redis.xpending_range(self.stream, self.group, min=entry_id, max=entry_id, count=1)
        if not info:
            return  # no longer pending: another consumer has settled it
        deliveries = int(info[0]["times_delivered"])
        context = {"stream": self.stream, "entry_id": entry_id.decode(), "reason": reason,
                   "deliveries": deliveries}
        if deliveries < self.max_deliveries:
            self.stats.retried += 1
            log.warning("stream entry not stored; it will be retried", extra=context)
            return
        dead = {k: v for k, v in fields.items() if not k.startswith(b"dlq_")}
        dead.update({b"dlq_reason": reason.encode(), b"dlq_entry_id": entry_id,
                     b"dlq_deliveries": str(deliveries).encode(), b"dlq_group": self.group.encode(),
                     b"dlq_consumer": self.name.encode()})
        async with redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.dead_letter_stream, dead)
            pipe.xack(self.stream, self.group, entry_id)
            await pipe.execute()
        self.stats.dead_lettered += 1
        log.error("stream entry moved to the dead-letter stream",
                  extra={**context, "dead_letter_stream": self.dead_letter_stream})

    # -- loop ----------------------------------------------------------------------------------

    async def run_forever(self, stop_event: asyncio.Event) -> None:
        """Consume until `stop_event` is set; outages are logged once and retried with back-off.

        Up to `max_inflight` batches are stored at once (the next batch is read and decoded
        while the previous one commits), so the loop is not bound by one commit at a time.
        """
        self._pending_unchecked = True
        next_trim = time.monotonic() + self.trim_interval
        inflight: set[asyncio.Task] = set()
        try:
            while not stop_event.is_set():
                try:
                    await self._pipelined_round(inflight)
                    if self.trim_interval > 0 and time.monotonic() >= next_trim:
                        next_trim = time.monotonic() + self.trim_interval
                        await self.trim_once()
                except (RedisError, OSError, SQLAlchemyError) as exc:
                    await self._settle(inflight)
                    if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                        self._group_ready = False  # the stream was lost (Redis without persistence)
                    self._failed(exc)
                except Exception:
                    await self._settle(inflight)
                    log.exception("audit consumer error", extra={"consumer": self.name})
                    self._failed(None)
                else:
                    self._recovered()
                    continue
                try:
                    await asyncio.wait_for(stop_event.wait(), self._backoff.next_delay())
                except asyncio.TimeoutError:
                    pass
        finally:
            await self._settle(inflight)
            if self._owns_client:
                await self.close()

    async def _pipelined_round(self, inflight: set[asyncio.Task]) -> None:
        await self._reap(inflight, self.max_inflight - 1)
        if self._maintenance_due():
            await self._reap(inflight, 0)  # pending/claim work must not race batches in flight
            await self._maintenance()
        entries = await self._read_new()
        if entries:
            inflight.add(asyncio.create_task(self._process(entries)))

    @staticmethod
    async def _reap(inflight: set[asyncio.Task], keep: int) -> None:
        """Wait until at most `keep` batches are in flight; re-raise a failed batch's error."""
        while True:
            for task in [t for t in inflight if t.done()]:
                inflight.discard(task)
                task.result()
            if len(inflight) <= keep:
                return
            await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)

    @staticmethod
    async def _settle(inflight: set[asyncio.Task]) -> None:
        """Let every batch in flight finish (its entries stay pending if it fails)."""
        if inflight:
            await asyncio.gather(*inflight, return_exceptions=True)
            inflight.clear()

    def _failed(self, exc: BaseException | None) -> None:
        self._pending_unchecked = True  # whatever was read but not acknowledged is ours to redo
        if self._outage_started is None:
            self._outage_started = time.monotonic()
            if exc is not None:
                what = "database" if isinstance(exc, SQLAlchemyError) else "redis"
                log.warning("audit consumer cannot make progress; retrying with back-off",
                            extra={"consumer": self.name, "unavailable": what,
                                   "error": f"{type(exc).__name__}: {exc}"[:300]})

    def _recovered(self) -> None:
        if self._outage_started is not None:
            log.info("audit consumer running again",
                     extra={"consumer": self.name,
                            "outage_seconds": round(time.monotonic() - self._outage_started, 3)})
            self._outage_started = None
        self._backoff.reset()
