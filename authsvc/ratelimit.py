"""Sliding-window rate limits kept in the database, so every authsvc replica shares them.

Each counted attempt is one `RateLimitHit` row under a key such as "login:user:<id>". A subject
is limited while it has `limit` hits younger than `window`; it may try again once the oldest of
those leaves the window. Checks and hits run inside the caller's transaction, so a hit commits
with the audit event of the attempt it counts. Two replicas racing on the same key may overshoot
the limit by the number of attempts in flight; that is accepted (no lock on the hot path).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from authsvc.accounts.models import RateLimitHit
from authsvc.errors import RateLimited
from gatehouse.infra.clock import Clock, as_utc

# Keys of subjects that never come back would otherwise stay forever: every this many hits, the
# limiter also deletes every row older than the longest window it has been asked about.
PRUNE_EVERY = 200


@dataclasses.dataclass(frozen=True)
class Limit:
    """At most `limit` hits per `window` seconds for one subject under `name`."""

    name: str
    limit: int
    window: int
    message: str = "Too many attempts."

    def key(self, subject: str) -> str:
        return f"{self.name}:{subject}"[:200]


@dataclasses.dataclass(frozen=True)
class Status:
    limited: bool
    remaining: int
    retry_after: int  # seconds until one more attempt is allowed; 0 when not limited


def describe_wait(seconds: int) -> str:
    """"3 minutes", "45 seconds": how long to wait, for messages shown to users."""
    if seconds >= 120:
        minutes = math.ceil(seconds / 60)
        return f"{minutes} minutes"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


class RateLimiter:
    def __init__(self, clock: Clock):
        self.clock = clock
        self._hits_since_prune = 0
        self._longest_window = 0

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
