"""The expiry sweep: a notice mail a week before a token ends, and an event when it has ended.

Every authsvc replica runs the sweep; each mail and each event still happens once. A replica
claims a token with one conditional UPDATE (`... WHERE expiry_notice_at IS NULL`): of two replicas
racing for the same token exactly one changes the row and goes on, in PostgreSQL and SQLite alike.
The expiry event is written in the claim's own transaction (an event exists if and only if its
claim committed). The notice mail is sent after its claim committed; if the mail server refuses it,
the claim is released so that a later sweep tries again. A replica that dies between the commit and
the send loses that one mail (never sends two). A token whose whole life is shorter than the notice
period gets no notice: its creator chose that date a moment ago.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from authsvc.accounts.models import User
from authsvc.mail import Message
from authsvc.notices import Notifier, notice_address
from authsvc.tokens.models import ApiToken
from authsvc.tokens.revocation import emit_token_events
from gatehouse.infra.clock import Clock, as_utc
from gatehouse.infra.outbox import SYSTEM, EventEmitter

log = logging.getLogger(__name__)
BATCH = 200  # tokens looked at per step of a sweep


@dataclasses.dataclass(frozen=True)
class SweepResult:
    notices: int = 0
    expired: int = 0


class ExpirySweep:
    def __init__(self, *, db: async_sessionmaker[AsyncSession], clock: Clock, events: EventEmitter,
                 notifier: Notifier, notice_before: dt.timedelta, interval: int):
        self.db = db
        self.clock = clock
        self.events = events
        self.notifier = notifier
        self.notice_before = notice_before
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def run_once(self) -> SweepResult:
        """One sweep: every due notice and every due expiry event (each claimed once)."""
        now = self.clock.now()
        return SweepResult(notices=await self._notices(now), expired=await self._expired(now))

    @staticmethod
    async def _claim(s: AsyncSession, column: InstrumentedAttribute[dt.datetime | None], token_id: str,
                     now: dt.datetime) -> bool:
        """Set `column` of one token if it is still unset: True for the one replica that did."""
        result = await (await s.connection()).execute(
            update(ApiToken).where(ApiToken.id == token_id, column.is_(None)).values({column: now}))
        return result.rowcount == 1

    async def _candidates(self, *conditions: ColumnElement[bool]) -> list[str]:
        async with self.db() as s:
            return list(await s.scalars(select(ApiToken.id).where(*conditions)
                                        .order_by(ApiToken.expires_at).limit(BATCH)))

    async def _notices(self, now: dt.datetime) -> int:
        sent, tried = 0, set()
        while ids := [i for i in await self._candidates(ApiToken.expiry_notice_at.is_(None),
                                                        ApiToken.expires_at > now,
                                                        ApiToken.expires_at <= now + self.notice_before)
                      if i not in tried]:
            tried.update(ids)
            for token_id in ids:
                sent += await self._notice(token_id, now)
        return sent

    async def _notice(self, token_id: str, now: dt.datetime) -> int:
        async with self.db() as s, s.begin():
            if not await self._claim(s, ApiToken.expiry_notice_at, token_id, now):
                return 0  # another replica has it
            message = await self._notice_message(s, token_id)
        if message is None:
            return 0
        if await self.notifier.deliver([message], purpose="token_expiring"):
            return 1
        async with self.db() as s, s.begin():  # not sent: let a later sweep try again
            await s.execute(update(ApiToken).where(ApiToken.id == token_id, ApiToken.expiry_notice_at == now)
                            .values(expiry_notice_at=None))
        return 0

    async def _notice_message(self, s: AsyncSession, token_id: str) -> Message | None:
        row = (await s.execute(select(ApiToken, User).join(User, User.id == ApiToken.user_id)
                               .where(ApiToken.id == token_id))).first()
        if row is None:
            return None
        token, user = row
        expires = as_utc(token.expires_at)
        if as_utc(token.created_at) > expires - self.notice_before or not user.is_active:
            return None
        return self.notifier.token_expiring(to=notice_address(user.emails), username=user.username,
                                            description=token.description, expires_at=expires)

    async def _expired(self, now: dt.datetime) -> int:
        recorded = 0
        while ids := await self._candidates(ApiToken.expired_recorded_at.is_(None), ApiToken.expires_at <= now):
            for token_id in ids:
                async with self.db() as s, s.begin():
                    if not await self._claim(s, ApiToken.expired_recorded_at, token_id, now):
                        continue
                    token, username = (await s.execute(select(ApiToken, User.username)
                                                       .join(User, User.id == ApiToken.user_id)
                                                       .where(ApiToken.id == token_id))).one()
                    await emit_token_events(s, self.events, "expired", token, (token.user_id, username),
                                            actor=SYSTEM, origin=None)
                    recorded += 1
        return recorded

    # -- the periodic task ---------------------------------------------------------------------------

    def start(self) -> None:
        if self.interval > 0 and self._task is None:
            self._stopping.clear()
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                result = await self.run_once()
                if result.notices or result.expired:
                    log.info("token expiry sweep", extra={"notices": result.notices, "expired": result.expired})
            except Exception as exc:  # noqa: BLE001 - the next sweep tries again
                log.error("token expiry sweep failed", extra={"error": type(exc).__name__})
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self.interval)
            except TimeoutError:
                pass

    async def stop(self) -> None:
        """End the sweeps. A sweep under way finishes first: cancelling it inside its transaction
        could leave a connection holding the database (SQLite's write lock) after shutdown."""
        if self._task is not None:
            self._stopping.set()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
