"""Rate limits kept in the database, so every authsvc replica shares them.

Two kinds, both under keys such as "login:user:<id>":

- Attempt limits (`acquire`): an attempt takes a slot *before* the thing it guards is checked
  (a password, a second-factor code), in one atomic upsert on a `RateLimitCounter` row that both
  tests and counts; a slot that turns out not to be a failure is given back (`release`). So N
  parallel attempts run at most `limit` checks per window, on SQLite and PostgreSQL alike, from
  any number of replicas. A window is fixed, from the first attempt after the previous one ended;
  when a `Limit` has a `max_window`, each window used up in a row doubles the next (up to it).
- Sliding-window hit counts (`check`/`hit`/`status`, `RateLimitHit` rows) for the mail limits,
  where a rare overshoot under concurrency costs an extra email, not a guess.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
from collections.abc import Sequence

from sqlalchemy import Index, Integer, String, bindparam, case, delete, insert, or_, select, update
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, Session, mapped_column

from authsvc.db import Base
from authsvc.errors import RateLimited
from gatehouse.infra.clock import Clock, as_utc
from gatehouse.infra.prepared import Prepared

# Keys of subjects that never come back would otherwise stay forever: every this many hits, the
# limiter also deletes every row older than the longest window it has been asked about.
PRUNE_EVERY = 200


class RateLimitHit(Base):
    """One counted attempt under a rate-limit key (e.g. "login:user:<id>", "login:ip:<ip>")."""

    __tablename__ = "rate_limit_hits"
    __table_args__ = (Index("ix_rate_limit_hits_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200))
    at: Mapped[dt.datetime]


class RateLimitCounter(Base):
    """The attempts counted under a key in its current fixed window (see `RateLimiter.acquire`):
    one row per key, so counting and testing are one atomic upsert. `strikes` is how many windows
    in a row were used up; each one doubles the next window, up to the limit's `max_window`."""

    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer)
    window_end: Mapped[dt.datetime] = mapped_column(index=True)
    strikes: Mapped[int] = mapped_column(Integer, default=0)


@dataclasses.dataclass(frozen=True)
class Limit:
    """At most `limit` hits per `window` seconds for one subject under `name`."""

    name: str
    limit: int
    window: int
    message: str = "Too many attempts."
    # Attempt limits only: above `window`, each window used up in a row doubles the next, to this.
    max_window: int = 0

    def key(self, subject: str) -> str:
        return f"{self.name}:{subject}"[:200]

    def spans(self) -> list[int]:
        """The window's length after 0, 1, 2, ... used-up windows in a row (the last one repeats)."""
        spans = [self.window]
        while self.max_window > spans[-1]:
            spans.append(min(spans[-1] * 2, self.max_window))
        return spans


@dataclasses.dataclass(frozen=True)
class Slot:
    """One attempt counted under `key` in the window that ends at `window_end`."""

    key: str
    window_end: dt.datetime


@dataclasses.dataclass(frozen=True)
class Acquired:
    """The slots one attempt took (every limit asked), or the refusal when one was used up
    (then none is held)."""

    slots: tuple[Slot, ...] = ()
    refused: RateLimited | None = None
    limit: Limit | None = None  # the limit that refused


@dataclasses.dataclass(frozen=True)
class Status:
    limited: bool
    remaining: int
    retry_after: int  # seconds until one more attempt is allowed; 0 when not limited


def describe_wait(seconds: int) -> str:
    """"5 hours", "3 minutes", "45 seconds": how long to wait, for messages shown to users."""
    if seconds > 2 * 3600:
        return f"{math.ceil(seconds / 3600)} hours"
    if seconds >= 120:
        minutes = math.ceil(seconds / 60)
        return f"{minutes} minutes"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


_COUNTERS = RateLimitCounter.__table__
_WHEN = RateLimitCounter.window_end.type


def _when(name: str):
    return bindparam(name, type_=_WHEN)


@functools.cache
def _take_statement(limit: Limit) -> Prepared:
    """The upsert that counts one attempt unless the window is full: built once per limit (and
    dialect), its values bound per call (key, now, the possible window ends). The new window is as
    long as the used-up windows in a row before it allow (`Limit.spans`)."""
    t = _COUNTERS
    top = len(limit.spans()) - 1
    ended = t.c.window_end <= _when("now")
    # After a used-up window that ended less than `max_window` ago: one more strike.
    used_up = (t.c.hits >= bindparam("limit")) & (t.c.window_end > _when("quiet"))
    strikes = case((used_up, case((t.c.strikes >= top, top), else_=t.c.strikes + 1)), else_=0)
    new_end = (case(*[(strikes == i, _when(f"end{i}")) for i in range(top)], else_=_when(f"end{top}"))
               if top else _when("end0"))

    def upsert(dialect_insert):
        return dialect_insert(t).values(key=bindparam("key"), hits=1, window_end=_when("end0"), strikes=0) \
            .on_conflict_do_update(
                index_elements=[t.c.key],
                set_={"hits": case((ended, 1), else_=t.c.hits + 1),
                      "strikes": case((ended, strikes), else_=t.c.strikes),
                      "window_end": case((ended, new_end), else_=t.c.window_end)},
                where=or_(ended, t.c.hits < bindparam("limit")),
            ).returning(t.c.window_end)
    return Prepared(upsert)


# Run on the driver's cursor (`Prepared`): the second login step runs these on every attempt.
_RELEASE = Prepared(update(_COUNTERS).where(_COUNTERS.c.key == bindparam("key"), _COUNTERS.c.window_end == _when("end"),
                                            _COUNTERS.c.hits > 0).values(hits=_COUNTERS.c.hits - 1))
_RESET_ONE_RELEASE_OTHER = Prepared(
    update(_COUNTERS)
    .where(or_(_COUNTERS.c.key == bindparam("reset"),
               (_COUNTERS.c.key == bindparam("key")) & (_COUNTERS.c.window_end == _when("end")) & (_COUNTERS.c.hits > 0)))
    .values(hits=case((_COUNTERS.c.key == bindparam("reset"), 0), else_=_COUNTERS.c.hits - 1),
            strikes=case((_COUNTERS.c.key == bindparam("reset"), 0), else_=_COUNTERS.c.strikes)))
_WINDOW_END = Prepared(select(_COUNTERS.c.window_end).where(_COUNTERS.c.key == bindparam("key")))


@functools.cache
def _read_when(dialect: Dialect):
    """The dialect's conversion of a stored window end (SQLite: text) into a datetime."""
    return _WHEN.dialect_impl(dialect).result_processor(dialect, None) or (lambda value: value)


class RateLimiter:
    def __init__(self, clock: Clock):
        self.clock = clock
        self._hits_since_prune = 0
        self._longest_window = 0
        self._acquired_since_prune = 0
        self._longest_keep = 0

    # -- attempt limits: one atomic upsert per limit ----------------------------------------

    def _take_sync(self, conn: Connection, limit: Limit, subject: str, now: dt.datetime) -> Slot | None:
        """Count one attempt under the limit's key unless its window is full: one statement, so
        parallel attempts (other connections, other replicas) cannot both take the last slot."""
        spans = limit.spans()
        params = {"key": limit.key(subject), "now": now, "limit": limit.limit,
                  "quiet": now - dt.timedelta(seconds=spans[-1]),
                  **{f"end{i}": now + dt.timedelta(seconds=span) for i, span in enumerate(spans)}}
        row = _take_statement(limit).execute(conn, params)
        return None if row is None else Slot(params["key"], as_utc(_read_when(conn.dialect)(row[0])))

    def acquire_sync(self, s: Session, limits: Sequence[tuple[Limit, str]]) -> Acquired:
        """Take one slot under each (limit, subject), in order, in the caller's transaction. When
        one is used up, the slots already taken are given back and the refusal says when to retry."""
        now = self.clock.now()
        conn = s.connection()
        taken: list[Slot] = []
        for limit, subject in limits:
            self._longest_keep = max(self._longest_keep, limit.spans()[-1])
            slot = self._take_sync(conn, limit, subject, now)
            if slot is None:
                self.release_sync(s, taken)
                row = _WINDOW_END.execute(conn, {"key": limit.key(subject)})
                ends = as_utc(_read_when(conn.dialect)(row[0]))
                wait = max(1, math.ceil((ends - now).total_seconds()))
                return Acquired(refused=RateLimited(f"{limit.message} Try again in {describe_wait(wait)}.",
                                                    retry_after=wait), limit=limit)
            taken.append(slot)
        self._acquired_since_prune += 1
        if self._acquired_since_prune >= PRUNE_EVERY:
            self._acquired_since_prune = 0
            s.execute(delete(_COUNTERS).where(_COUNTERS.c.window_end <= now - dt.timedelta(seconds=self._longest_keep)))
        return Acquired(slots=tuple(taken))

    def release_sync(self, s: Session, slots: Sequence[Slot]) -> None:
        """Give slots back (the attempts succeeded): each only while its window lasts."""
        conn = s.connection() if slots else None
        for slot in slots:
            _RELEASE.execute(conn, {"key": slot.key, "end": slot.window_end})

    def reset_and_release_sync(self, s: Session, reset: Slot, release: Slot) -> None:
        """After a success: forget `reset`'s attempts and strikes, give `release` back (one statement)."""
        _RESET_ONE_RELEASE_OTHER.execute(s.connection(), {"reset": reset.key, "key": release.key,
                                                          "end": release.window_end})

    def forget_sync(self, s: Session, limits: Sequence[tuple[Limit, str]]) -> None:
        """Drop these counters, attempts and strikes alike (the owner proved who they are)."""
        s.execute(delete(_COUNTERS).where(_COUNTERS.c.key.in_([limit.key(subject) for limit, subject in limits])))

    async def acquire(self, s: AsyncSession, limits: Sequence[tuple[Limit, str]]) -> Acquired:
        return await s.run_sync(self.acquire_sync, limits)

    async def release(self, s: AsyncSession, slots: Sequence[Slot]) -> None:
        await s.run_sync(self.release_sync, slots)

    async def forget(self, s: AsyncSession, limits: Sequence[tuple[Limit, str]]) -> None:
        await s.run_sync(self.forget_sync, limits)

    # -- sliding-window hit counts ----------------------------------------------------------

    def status_sync(self, s: Session, limit: Limit, subject: str) -> Status:
        now = self.clock.now()
        self._longest_window = max(self._longest_window, limit.window)
        cutoff = now - dt.timedelta(seconds=limit.window)
        times = [as_utc(at) for at in s.scalars(
            select(RateLimitHit.at).where(RateLimitHit.key == limit.key(subject), RateLimitHit.at > cutoff)
            .order_by(RateLimitHit.at)
        )]
        if len(times) < limit.limit:
            return Status(limited=False, remaining=limit.limit - len(times), retry_after=0)
        # One slot frees when the hit that made the count reach the limit leaves the window.
        frees_at = times[len(times) - limit.limit] + dt.timedelta(seconds=limit.window)
        wait = max(1, math.ceil((frees_at - now).total_seconds()))
        return Status(limited=True, remaining=0, retry_after=wait)

    def hit_sync(self, s: Session, limit: Limit, subject: str) -> None:
        """Count one attempt (and drop this key's hits that have left the window)."""
        now = self.clock.now()
        key = limit.key(subject)
        self._longest_window = max(self._longest_window, limit.window)
        s.execute(delete(RateLimitHit).where(
            RateLimitHit.key == key, RateLimitHit.at <= now - dt.timedelta(seconds=limit.window)))
        s.execute(insert(RateLimitHit).values(key=key, at=now))
        self._hits_since_prune += 1
        if self._hits_since_prune >= PRUNE_EVERY:
            self._hits_since_prune = 0
            cutoff = now - dt.timedelta(seconds=self._longest_window)
            s.execute(delete(RateLimitHit).where(RateLimitHit.at <= cutoff))

    def clear_sync(self, s: Session, limit: Limit, subject: str) -> None:
        s.execute(delete(RateLimitHit).where(RateLimitHit.key == limit.key(subject)))

    # The same, inside an async session's transaction.

    async def status(self, s: AsyncSession, limit: Limit, subject: str) -> Status:
        return await s.run_sync(self.status_sync, limit, subject)

    async def check(self, s: AsyncSession, limit: Limit, subject: str) -> None:
        """Raise RateLimited (RESOURCE_EXHAUSTED with retry_after) when the subject is limited."""
        status = await self.status(s, limit, subject)
        if status.limited:
            raise RateLimited(f"{limit.message} Try again in {describe_wait(status.retry_after)}.",
                              retry_after=status.retry_after)

    async def hit(self, s: AsyncSession, limit: Limit, subject: str) -> None:
        await s.run_sync(self.hit_sync, limit, subject)

    async def clear(self, s: AsyncSession, limit: Limit, subject: str) -> None:
        await s.run_sync(self.clear_sync, limit, subject)
