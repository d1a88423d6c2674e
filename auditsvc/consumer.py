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
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from auditsvc.store.records import EventRecord, IngestResult
from auditsvc.store.service import AuditLog
from gatehouse.events.v1 import event_pb2
from gatehouse.infra.eventauth import EventAuthError, EventVerifier
from gatehouse.infra.consumergroup import OUTAGE_ERRORS, Backoff, ConsumerGroup, Entry, Outage

log = logging.getLogger(__name__)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_KINDS = {event_pb2.Actor.USER: "user", event_pb2.Actor.OPERATOR: "operator",
          event_pb2.Actor.SYSTEM: "system", event_pb2.Actor.ANONYMOUS: "anonymous",
          event_pb2.Actor.PUBLISHER: "publisher"}


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
    # Each field read once: every attribute read on a protobuf message builds a new Python object.
    event_id, source = event.event_id, event.source
    if not event_id or len(event_id) > 64 or not event_id.isprintable():
        raise PoisonEntry("the event has no valid event_id")
    outer = fields.get(b"event_id")
    if outer is not None and outer.decode("utf-8", "replace") != event_id:
        raise PoisonEntry("the entry's event_id does not match its event")
    tag = event.tag
    if not tag:
        raise PoisonEntry("the event has no tag")
    if source != opened.producer:
        raise PoisonEntry(f"unauthenticated: an event from {source[:40]!r} sealed with "
                          f"{opened.producer}'s key")
    occurred = None
    if event.HasField("occurred_at"):
        stamp = event.occurred_at
        occurred = _EPOCH + dt.timedelta(seconds=stamp.seconds, microseconds=stamp.nanos // 1000)
    actor = event.actor
    return EventRecord(
        event_id=event_id, tag=tag, occurred_at=occurred, source=source,
        actor_kind=_KINDS.get(actor.kind, "unspecified"), actor_user_id=actor.user_id,
        actor_username=actor.username, subject_user_id=event.subject_user_id,
        subject_username=event.subject_username, project_id=event.project_id,
        project_name=event.project_name, ip=event.ip_address, user_agent=event.user_agent,
        details=dict(event.details.items()),  # items(): dict(map) goes through the Mapping ABC
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
    """The audit service's member of the stream's consumer group (see the module docstring)."""

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
        self.source = ConsumerGroup(
            redis_url, stream, group, name, redis=redis, socket_timeout=max(10.0, block_ms / 1000 + 5),
            batch_size=batch_size, claim_idle_ms=claim_idle_ms, consumer_expiry_ms=consumer_expiry_ms,
            max_deliveries=max_deliveries, dead_letter_stream=dead_letter_stream)
        self.stream, self.group, self.name = stream, group, name
        self.dead_letter_stream = self.source.dead_letter_stream
        self.store = log_store
        self.verifier = verifier
        self.block_ms = block_ms
        self.trim_interval = trim_interval
        self.max_inflight = max(1, max_inflight)
        self._outage = Outage(log, {"consumer": name},
                              failing="audit consumer cannot make progress; retrying with back-off",
                              recovered="audit consumer running again",
                              backoff=Backoff(backoff_initial, backoff_max))
        self._after_commit = after_commit
        self._stats = ConsumerStats()

    @property
    def stats(self) -> ConsumerStats:
        self._stats.claimed = self.source.claimed  # counted where claims happen, in the group helper
        return self._stats

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

    async def close(self) -> None:
        await self.source.close()

    async def ensure_group(self) -> None:
        """Create the group (and the stream) if missing, reading from the very first entry."""
        await self.source.ensure()

    # -- one round -----------------------------------------------------------------------------

    async def consume_once(self, block_ms: int | None = None) -> int:
        """Own pending entries (when unchecked), idle entries of others (when due), then new ones.

        `block_ms`: wait this long for new entries (default: the configured block; 0 = don't
        wait). Returns the number of entries handled.
        """
        handled = await self.source.maintain(self._process)
        block = self.block_ms if block_ms is None else block_ms
        return handled + await self._process(await self.source.read_new(block))

    async def drain_pending(self) -> int:
        """Re-read and handle the entries delivered to this consumer name but never acknowledged."""
        return await self.source.drain_pending(self._process)

    async def claim_once(self) -> int:
        """Take over entries pending longer than `claim_idle_ms` (dead consumers, earlier failures)."""
        return await self.source.claim(self._process)

    async def remove_dead_consumers(self) -> list[str]:
        """Remove dead consumers from the group, claiming what they still hold first."""
        return await self.source.remove_dead_consumers(self._process)

    async def trim_once(self) -> int:
        return await self.source.trim()

    # -- handling ------------------------------------------------------------------------------

    async def _process(self, entries: list[Entry]) -> int:
        if not entries:
            return 0
        self._stats.delivered += len(entries)
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
            self._stats.stored += len(result.inserted)
            for entry_id, record in good:
                if record.event_id in result.rejected:
                    bad.append((entry_id, result.rejected[record.event_id]))
                else:
                    stored_ids.append(entry_id)
            self._stats.duplicates += len(stored_ids) - len(result.inserted)
            if stored_ids and self._after_commit is not None:
                await self._after_commit([record.event_id for _, record in good
                                          if record.event_id not in result.rejected])
        self._stats.acked += await self.source.ack(*stored_ids, *gone)
        if gone:
            log.warning("pending entries no longer in the stream were acknowledged",
                        extra={"stream": self.stream, "count": len(gone)})
        for entry_id, reason in bad:
            outcome = await self.source.failed_entry(entry_id, fields_by_id[entry_id], reason)
            if outcome == "retry":
                self._stats.retried += 1
            elif outcome == "dead":
                self._stats.dead_lettered += 1
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

    # -- loop ----------------------------------------------------------------------------------

    async def run_forever(self, stop_event: asyncio.Event) -> None:
        """Consume until `stop_event` is set; outages are logged once and retried with back-off.

        Up to `max_inflight` batches are stored at once (the next batch is read and decoded
        while the previous one commits), so the loop is not bound by one commit at a time.
        """
        self.source.pending_unchecked = True
        next_trim = time.monotonic() + self.trim_interval
        inflight: set[asyncio.Task] = set()
        try:
            while not stop_event.is_set():
                try:
                    await self._pipelined_round(inflight)
                    if self.trim_interval > 0 and time.monotonic() >= next_trim:
                        next_trim = time.monotonic() + self.trim_interval
                        await self.trim_once()
                except OUTAGE_ERRORS as exc:
                    await self._settle(inflight)
                    self.source.failed(exc)
                    self._outage.failed(exc)
                except Exception:
                    await self._settle(inflight)
                    log.exception("audit consumer error", extra={"consumer": self.name})
                    self.source.failed(None)
                    self._outage.failed(None)
                else:
                    self._outage.recovered()
                    continue
                await self._outage.pause(stop_event)
        finally:
            await self._settle(inflight)
            await self.close()

    async def _pipelined_round(self, inflight: set[asyncio.Task]) -> None:
        await self._reap(inflight, self.max_inflight - 1)
        if self.source.maintenance_due():
            await self._reap(inflight, 0)  # pending/claim work must not race batches in flight
            await self.source.maintain(self._process)
        entries = await self.source.read_new(self.block_ms)
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
