"""The audit log: stores events once (keyed by event id) and answers the user, project and admin logs.

Queries are newest first with cursor pagination over (occurred_at, id), and cover the last
`default_window` unless the caller gives a window. Events older than `retention` are pruned.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import hashlib
import time
from collections.abc import AsyncIterator, Sequence

from sqlalchemy import and_, delete, func, or_, select, text, true
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DataError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import async_sessionmaker

from auditsvc.errors import InvalidArgument, RecordRejected
from auditsvc.store.models import WIDTHS, events
from auditsvc.store.records import Cursor, EventFilter, EventRecord, IngestResult, LogEntry, Page
from auditsvc.store.sanitize import clean_text, dump_details, hash_ip, load_details, project_safe
from gatehouse.infra.clock import Clock, as_utc

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
_ACTOR_KINDS = {"user", "operator", "system", "anonymous", "publisher", "unspecified"}

_COLUMNS = ", ".join(c.name for c in events.c if c.name != "id")
# The batch as one array of the table's own row type: asyncpg fills each record's fields from a
# row dict by name (the id stays empty: the sequence gives it), one small statement whatever the size.
_PG_BATCH_INSERT = text(
    f"INSERT INTO {events.name} ({_COLUMNS}) SELECT {_COLUMNS} FROM unnest(CAST(:rows AS {events.name}[])) "
    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is dt.timezone.utc else as_utc(value)


class AuditLog:
    """The audit service's domain: ingest (idempotent), the three logs, follow, retention."""

    def __init__(
        self,
        db: async_sessionmaker,
        *,
        clock: Clock,
        default_window: dt.timedelta = dt.timedelta(days=14),
        retention: dt.timedelta = dt.timedelta(days=90),
        ip_hash_key: bytes | None = None,
    ):
        self.db = db
        self.clock = clock
        self.default_window = default_window
        self.retention = retention
        self.ip_hash_key = ip_hash_key or None  # set: IPs are stored as keyed hashes

    # -- ingest --------------------------------------------------------------------------------

    def _row(self, record: EventRecord, received_at: dt.datetime) -> dict:
        """The row stored for an event: every text cleaned and cut to its column (one pass)."""
        ip = clean_text(record.ip, 100)
        hashed = bool(ip and self.ip_hash_key)
        kind = record.actor_kind if record.actor_kind in _ACTOR_KINDS else "unspecified"
        return {
            "event_id": clean_text(record.event_id, WIDTHS["event_id"]),
            "tag": clean_text(record.tag, WIDTHS["tag"]),
            "occurred_at": _utc(record.occurred_at) if record.occurred_at else received_at,
            "received_at": received_at, "source": clean_text(record.source, WIDTHS["source"]),
            "actor_kind": kind,
            "actor_user_id": clean_text(record.actor_user_id, WIDTHS["actor_user_id"]),
            "actor_username": clean_text(record.actor_username, WIDTHS["actor_username"]),
            "subject_user_id": clean_text(record.subject_user_id, WIDTHS["subject_user_id"]),
            "subject_username": clean_text(record.subject_username, WIDTHS["subject_username"]),
            "project_id": clean_text(record.project_id, WIDTHS["project_id"]),
            "project_name": clean_text(record.project_name, WIDTHS["project_name"]),
            "ip": hash_ip(ip, self.ip_hash_key) if hashed else ip[:WIDTHS["ip"]],
            "ip_hashed": hashed,
            "user_agent": clean_text(record.user_agent, WIDTHS["user_agent"]),
            "details": dump_details(record.details),
        }

    async def ingest(self, records: Sequence[EventRecord]) -> IngestResult:
        """Store the events in one transaction, skipping ids already stored.

        If the database refuses the batch's data, each event is retried alone so that one bad
        event does not hold back the others; the refused ones come back in `rejected`. An outage
        (connection lost, database down) raises instead.
        """
        received_at = _utc(self.clock.now())
        rows, seen, unusable = [], set(), {}
        for record in records:
            try:
                row = self._row(record, received_at)
            except (TypeError, ValueError, AttributeError) as exc:
                unusable[str(record.event_id)] = f"unusable event: {type(exc).__name__}: {exc}"[:200]
                continue
            if row["event_id"] and row["event_id"] not in seen:
                seen.add(row["event_id"])
                rows.append(row)
        if not rows:
            return IngestResult(set(), unusable)
        try:
            return IngestResult(await self._insert(rows), unusable)
        except RecordRejected as exc:
            if len(rows) == 1:
                return IngestResult(set(), {**unusable, rows[0]["event_id"]: exc.reason})
        inserted, rejected = set(), dict(unusable)
        for row in rows:
            try:
                inserted |= await self._insert([row])
            except RecordRejected as exc:
                rejected[row["event_id"]] = exc.reason
        return IngestResult(inserted, rejected)

    async def ping(self) -> None:
        """Raise unless the events table answers (tells an outage from an event the store refuses)."""
        async with self.db() as session:
            await session.execute(select(events.c.id).limit(1))

    async def _insert(self, rows: list[dict]) -> set[str]:
        async with self.db() as session:
            try:
                if session.get_bind().dialect.name == "postgresql":
                    result = await session.execute(_PG_BATCH_INSERT, {"rows": rows})
                else:
                    stmt = (sqlite.insert(events).on_conflict_do_nothing(index_elements=["event_id"])
                            .returning(events.c.event_id))
                    result = await session.execute(stmt, rows)
                inserted = set(result.scalars())
                await session.commit()
            except (DataError, IntegrityError) as exc:
                raise RecordRejected(f"{type(exc).__name__}: {str(exc.orig)[:200]}") from exc
            except StatementError as exc:
                if isinstance(exc.orig, (ValueError, TypeError)):
                    raise RecordRejected(f"{type(exc.orig).__name__}: {str(exc.orig)[:200]}") from exc
                raise
        return inserted

    # -- queries -------------------------------------------------------------------------------

    async def list_user_events(self, user_id: str, **kwargs) -> Page:
        """The user's own security history: events about the account or performed by it."""
        if not user_id:
            raise InvalidArgument("user_id is required.", reason="missing_user_id")
        cond = or_(events.c.subject_user_id == user_id, events.c.actor_user_id == user_id)
        return await self._page(cond, f"user:{user_id}", **kwargs)

    async def list_project_events(self, project_id: str, **kwargs) -> Page:
        """A project's log (for its Owners): details never name the project's token scopes."""
        if not project_id:
            raise InvalidArgument("project_id is required.", reason="missing_project_id")
        return await self._page(events.c.project_id == project_id, f"project:{project_id}",
                                project_view=True, **kwargs)

    async def list_events(self, flt: EventFilter, **kwargs) -> Page:
        """The full log for operators, with filters."""
        return await self._page(self._filter(flt), f"admin:{flt.fingerprint()}", **kwargs)

    def _filter(self, flt: EventFilter):
        c = events.c
        conds = []
        if flt.tag:
            conds.append(c.tag == flt.tag)
        if flt.tag_prefix:
            conds.append(c.tag.startswith(flt.tag_prefix, autoescape=True))
        for column, value in ((c.actor_user_id, flt.actor_user_id), (c.subject_user_id, flt.subject_user_id),
                              (c.project_id, flt.project_id)):
            if value:
                conds.append(column == value)
        for column, value in ((c.actor_username, flt.actor_username),
                              (c.subject_username, flt.subject_username),
                              (c.project_name, flt.project_name)):
            if value:
                conds.append(func.lower(column) == value.lower())
        if flt.ip_address:
            ip = flt.ip_address.strip()
            candidates = [ip] + ([hash_ip(ip, self.ip_hash_key)] if self.ip_hash_key else [])
            conds.append(c.ip.in_(candidates))
        return and_(true(), *conds)

    def _window(self, since, until) -> tuple[dt.datetime, dt.datetime | None]:
        since = as_utc(since) if since else self.clock.now() - self.default_window
        until = as_utc(until) if until else None
        if until is not None and until <= since:
            raise InvalidArgument("The start of the time window must be before its end.", reason="bad_window")
        return since, until

    async def _page(self, cond, query: str, *, page_size: int = 0, page_token: str = "",
                    since: dt.datetime | None = None, until: dt.datetime | None = None,
                    project_view: bool = False) -> Page:
        if page_size < 0:
            raise InvalidArgument("page_size cannot be negative.", reason="bad_page_size")
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        explicit = f"{query}|{since and as_utc(since).isoformat()}|{until and as_utc(until).isoformat()}"
        digest = hashlib.sha256(explicit.encode()).hexdigest()[:12]
        since, until = self._window(since, until)
        c = events.c
        stmt = select(events).where(cond, c.occurred_at >= since)
        if until is not None:
            stmt = stmt.where(c.occurred_at < until)
        if page_token:
            cur = Cursor.decode(page_token, digest)
            stmt = stmt.where(or_(c.occurred_at < cur.occurred_at,
                                  and_(c.occurred_at == cur.occurred_at, c.id < cur.id)))
        stmt = stmt.order_by(c.occurred_at.desc(), c.id.desc()).limit(size + 1)
        async with self.db() as session:
            rows = (await session.execute(stmt)).all()
        entries = [self._entry(r, project_view) for r in rows[:size]]
        token = ""
        if len(rows) > size:
            last = entries[-1]
            token = Cursor(last.occurred_at, last.id, digest).encode()
        return Page(entries, token)

    @staticmethod
    def _entry(row, project_view: bool = False) -> LogEntry:
        details = load_details(row.details)
        return LogEntry(
            id=row.id, event_id=row.event_id, tag=clean_text(row.tag, WIDTHS["tag"]),
            occurred_at=as_utc(row.occurred_at), received_at=as_utc(row.received_at),
            source=clean_text(row.source, WIDTHS["source"]), actor_kind=row.actor_kind,
            actor_user_id=clean_text(row.actor_user_id, WIDTHS["actor_user_id"]),
            actor_username=clean_text(row.actor_username, WIDTHS["actor_username"]),
            subject_user_id=clean_text(row.subject_user_id, WIDTHS["subject_user_id"]),
            subject_username=clean_text(row.subject_username, WIDTHS["subject_username"]),
            project_id=clean_text(row.project_id, WIDTHS["project_id"]),
            project_name=clean_text(row.project_name, WIDTHS["project_name"]),
            ip=clean_text(row.ip, WIDTHS["ip"]), ip_hashed=bool(row.ip_hashed),
            user_agent=clean_text(row.user_agent, WIDTHS["user_agent"]),
            details=project_safe(details) if project_view else details,
        )

    async def follow(self, flt: EventFilter, *, since: dt.datetime | None = None,
                     poll_seconds: float = 0.5, lookback_seconds: float = 2.0,
                     backlog_page: int = 1000) -> AsyncIterator[LogEntry]:
        """Matching events as they are stored (after the ones since `since`), until cancelled.

        Rows are followed by id. Ids are handed out before commit, so a row may become visible
        after a higher one: every poll looks back at rows stored in the last `lookback_seconds`
        and skips those already sent.
        """
        cond = self._filter(flt)
        c = events.c
        async with self.db() as session:
            low = (await session.execute(select(func.coalesce(func.max(c.id), 0)))).scalar_one()
        if since is not None:
            after = and_(true(), c.occurred_at >= as_utc(since))
            while True:
                async with self.db() as session:
                    backlog = (await session.execute(
                        select(events).where(cond, c.id <= low, after)
                        .order_by(c.occurred_at, c.id).limit(backlog_page))).all()
                for row in backlog:
                    yield self._entry(row)
                if len(backlog) < backlog_page:
                    break
                last = backlog[-1]
                after = or_(c.occurred_at > last.occurred_at,
                            and_(c.occurred_at == last.occurred_at, c.id > last.id))
        marks: collections.deque[tuple[float, int]] = collections.deque()
        sent: set[int] = set()
        while True:
            await asyncio.sleep(poll_seconds)
            now = time.monotonic()
            async with self.db() as session:
                top = (await session.execute(select(func.coalesce(func.max(c.id), 0)))).scalar_one()
                marks.append((now, top))
                while marks and marks[0][0] <= now - lookback_seconds:
                    low = max(low, marks.popleft()[1])
                rows = (await session.execute(
                    select(events).where(cond, c.id > low).order_by(c.id).limit(5000))).all()
            sent = {i for i in sent if i > low}
            for row in rows:
                if row.id not in sent:
                    sent.add(row.id)
                    yield self._entry(row)

    # -- retention -----------------------------------------------------------------------------

    async def prune_once(self, batch: int = 5000) -> int:
        """Delete events that occurred before the retention period; returns how many."""
        cutoff = self.clock.now() - self.retention
        removed = 0
        while True:
            async with self.db() as session:
                ids = select(events.c.id).where(events.c.occurred_at < cutoff).limit(batch).scalar_subquery()
                result = await session.execute(delete(events).where(events.c.id.in_(ids)))
                await session.commit()
            removed += result.rowcount or 0
            if (result.rowcount or 0) < batch:
                return removed
