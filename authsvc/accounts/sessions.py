"""Browser sessions: start, resolve (what every other area uses), list, revoke, log out."""

from __future__ import annotations

import dataclasses
import logging

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session as OrmSession

from authsvc.accounts.core import AccountsConfig, as_actor, who
from authsvc.accounts.models import Session, User
from authsvc.accounts.validation import check_session_id, new_secret, token_digest
from authsvc.db import new_id
from authsvc.errors import AccountDisabled, NotFound, SessionInvalid
from gatehouse.infra.clock import Clock, as_utc
from gatehouse.infra.outbox import EventEmitter, Origin

log = logging.getLogger("authsvc.accounts")
MAX_SESSION_TOKEN = 200
_INSERT_SESSION = insert(Session.__table__)


@dataclasses.dataclass(frozen=True)
class Authenticated:
    """A user resolved from a session token (the user's emails are loaded)."""

    user: User
    session: Session


class Sessions:
    """Browser sessions: the part of the accounts service every other part (and area) resolves
    users with."""

    def __init__(self, *, db: async_sessionmaker, clock: Clock, events: EventEmitter, config: AccountsConfig):
        self.db = db
        self.clock = clock
        self.events = events
        self.config = config

    async def start_session(self, s: AsyncSession, user: User, origin: Origin | None) -> tuple[str, Session]:
        """Create a session inside the caller's transaction; returns (token, row)."""
        return await s.run_sync(self.start_session_sync, user, origin)

    def start_session_sync(self, s: OrmSession, user: User, origin: Origin | None,
                           method: str = "") -> tuple[str, Session]:
        now = self.clock.now()
        token = new_secret()
        origin = origin or Origin()
        values = dict(id=new_id(), token_hash=token_digest(token), user_id=user.id, created_at=now, last_seen_at=now,
                      expires_at=now + self.config.session_lifetime, authenticated_at=now, revoked_at=None,
                      ip_address=origin.ip_address[:64], user_agent=origin.user_agent[:300],
                      auth_method=method)
        s.connection().execute(_INSERT_SESSION, values)  # Core: no unit-of-work on the login path
        return token, Session(**values)  # the row as written (not attached to the session)

    async def _live_session(self, s: AsyncSession, session_token: str) -> tuple[Session, User]:
        if not session_token:
            raise SessionInvalid("Log in first.")
        if len(session_token) > MAX_SESSION_TOKEN:
            raise SessionInvalid()
        row = await s.scalar(select(Session).where(Session.token_hash == token_digest(session_token)))
        if row is None or row.revoked_at is not None or as_utc(row.expires_at) <= self.clock.now():
            raise SessionInvalid()
        user = await s.get(User, row.user_id)
        if user is None:
            raise SessionInvalid()
        if not user.is_active:
            raise AccountDisabled()
        return row, user

    async def authenticate_session(self, session_token: str) -> Authenticated:
        """The signed-in user of a session token, or SessionInvalid / AccountDisabled.

        Refuses unknown, expired and revoked sessions and disabled users. Records last_seen_at
        at most once per `touch_interval`, so validating is usually a single read.
        """
        now = self.clock.now()
        async with self.db() as s:
            row, user = await self._live_session(s, session_token)
            if now - as_utc(row.last_seen_at) >= self.config.touch_interval:
                row.last_seen_at = now
                await s.commit()
            return Authenticated(user=user, session=row)

    async def reauth_required(self, auth: Authenticated) -> bool:
        """True when the session's last password entry is older than `reauth_after` (PyPI: 30 min)."""
        return as_utc(auth.session.authenticated_at) + self.config.reauth_after <= self.clock.now()

    async def list_sessions(self, session_token: str) -> tuple[Authenticated, list[Session]]:
        """The user's live sessions, most recently seen first, with the caller's own."""
        auth = await self.authenticate_session(session_token)
        now = self.clock.now()
        async with self.db() as s:
            rows = list(await s.scalars(
                select(Session).where(Session.user_id == auth.user.id, Session.revoked_at.is_(None),
                                      Session.expires_at > now)
                .order_by(Session.last_seen_at.desc(), Session.created_at.desc())
            ))
        return auth, rows

    async def revoke_session(self, session_token: str, session_id: str, origin: Origin | None = None) -> None:
        """Revoke one of the caller's own sessions (another user's session id is 'not found')."""
        session_id = check_session_id(session_id)
        auth = await self.authenticate_session(session_token)
        async with self.db() as s, s.begin():
            result = await s.execute(
                update(Session).where(Session.id == session_id, Session.user_id == auth.user.id,
                                      Session.revoked_at.is_(None))
                .values(revoked_at=self.clock.now())
            )
            if result.rowcount != 1:
                raise NotFound("You have no active session with that id.", reason="session_not_found")
            await self.events.emit(s, "account:session:revoke", actor=as_actor(auth.user), user=who(auth.user),
                                   origin=origin, details={"session_id": session_id,
                                                           "current": auth.session.id == session_id})

    async def logout(self, session_token: str, origin: Origin | None = None) -> None:
        """End the session. A session that is already over is not an error (nothing to do)."""
        if not session_token:
            raise SessionInvalid("Log in first.")
        if len(session_token) > MAX_SESSION_TOKEN:
            return
        async with self.db() as s, s.begin():
            row = await s.scalar(select(Session).where(Session.token_hash == token_digest(session_token),
                                                       Session.revoked_at.is_(None)))
            if row is None:
                return
            row.revoked_at = self.clock.now()
            user = await s.get(User, row.user_id)
            if user is not None:
                await self.events.emit(s, "account:logout", actor=as_actor(user), user=who(user),
                                       origin=origin, details={"session_id": row.id})

    async def revoke_all(self, s: AsyncSession, user_id: str, *, keep: str | None = None) -> int:
        """Revoke the user's sessions (except `keep`) in the caller's transaction; how many."""
        query = update(Session).where(Session.user_id == user_id, Session.revoked_at.is_(None))
        if keep is not None:
            query = query.where(Session.id != keep)
        result = await s.execute(query.values(revoked_at=self.clock.now()))
        return result.rowcount or 0
