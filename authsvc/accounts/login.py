"""Password login, re-authentication and password change, with the failed-login rate limits.

Unknown accounts and wrong passwords get the same answer at the same cost: one argon2
verification (against a dummy hash when there is no account), the same limiter reads and
writes. An unknown name has no user log, so its failures write no audit event; they still count
against the client's IP and against the name itself (a hashed "name:" subject), so a limit
answer does not reveal whether the account exists either.

A rate-limited attempt is refused before the password is looked at, so the right password does
not help while limited.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging

from sqlalchemy import bindparam, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session as OrmSession

from authsvc.accounts.core import as_actor, ip_subject, sorted_emails, who
from authsvc.accounts.emailtokens import Purpose
from authsvc.accounts.models import Session, User
from authsvc.accounts.passwords import check_length
from authsvc.accounts.sessions import Authenticated, SessionsMixin
from authsvc.errors import AccountDisabled, InvalidArgument, InvalidCredentials
from gatehouse.infra.outbox import ANONYMOUS, Origin

log = logging.getLogger("authsvc.accounts")
_USERS = User.__table__
_SET_LAST_LOGIN = update(_USERS).where(_USERS.c.id == bindparam("uid")).values(last_login_at=bindparam("now"))


@dataclasses.dataclass(frozen=True)
class LoginResult:
    """Either a session (login complete) or a pending second-factor step (two-factor issue)."""

    user: User
    session_token: str | None = None
    session: Session | None = None
    second_factor_required: bool = False
    pending_login_token: str = ""
    second_factor_methods: tuple[str, ...] = ()


def _name_subject(login: str) -> str:
    return "name:" + hashlib.sha256(login.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()[:40]


class LoginMixin(SessionsMixin):
    async def _check_login_limits(self, s: AsyncSession, subject: str, origin: Origin | None) -> None:
        await self.limiter.check(s, self.config.login_ip, ip_subject(origin))
        await self.limiter.check(s, self.config.login_user, subject)

    async def _count_failure(self, s: AsyncSession, subject: str, origin: Origin | None) -> None:
        await self.limiter.hit(s, self.config.login_ip, ip_subject(origin))
        await self.limiter.hit(s, self.config.login_user, subject)

    async def _upgraded_hash(self, stored: str | None, normalised: str) -> str | None:
        """A new hash when the stored one was made with other argon2 parameters."""
        if stored and self.hasher.needs_rehash(stored):
            return await self.hasher.hash(normalised)
        return None

    async def _store_hash_upgrade(self, s: AsyncSession, user: User, old: str, new: str | None) -> None:
        if new is not None:  # only if the password did not change meanwhile
            await s.execute(update(User).where(User.id == user.id, User.password_hash == old)
                            .values(password_hash=new))
            log.info("password hash upgraded", extra={"user_id": user.id})

    async def login(self, login: str, password: str, origin: Origin | None = None) -> LoginResult:
        """Password login: a session, or the second-factor step when the user has one. Refused
        at once (HashingBusy) when the password hashing queue is full."""
        async with self.hasher.admission():
            return await self._login(login, password, origin)

    async def _login(self, login: str, password: str, origin: Origin | None) -> LoginResult:
        origin = origin or Origin()
        login = (login or "").strip()
        if not login:
            raise InvalidArgument("Enter your username or email address.", reason="login_missing")
        if not password:
            raise InvalidArgument("Enter your password.", reason="password_missing")
        normalised = check_length(password)
        async with self.db() as s:
            user, _ = await self._find_by_login(s, login)
            subject = user.id if user else _name_subject(login)
            await self._check_login_limits(s, subject, origin)
        stored = user.password_hash if user else None
        if not await self.hasher.verify(stored, normalised):
            async with self.db() as s, s.begin():
                await self._count_failure(s, subject, origin)
                if user is not None:
                    await self.events.emit(s, "account:login:failure", actor=ANONYMOUS, user=who(user),
                                           origin=origin, details={
                                               "reason": "invalid_password" if stored else "no_password",
                                               "method": "password"})
            log.info("login failed", extra={"reason": "invalid_credentials"})
            raise InvalidCredentials()
        if not user.is_active:
            async with self.db() as s, s.begin():
                await self.events.emit(s, "account:login:failure", actor=ANONYMOUS, user=who(user),
                                       origin=origin, details={"reason": "account_disabled", "method": "password"})
            raise AccountDisabled()
        new_hash = await self._upgraded_hash(stored, normalised)
        async with self.db() as s, s.begin():
            await self._store_hash_upgrade(s, user, stored, new_hash)
            methods = tuple(await self.second_factor.methods(s, user))
            if methods:
                pending = await self.second_factor.start_pending_login(s, user, origin)
                return LoginResult(user=user, second_factor_required=True, pending_login_token=pending,
                                   second_factor_methods=methods)
            return await self.finish_login(s, user, origin, method="password")

    async def finish_login(self, s: AsyncSession, user: User, origin: Origin | None, *, method: str) -> LoginResult:
        return await s.run_sync(self.finish_login_sync, user, origin, method=method)

    def finish_login_sync(self, s: OrmSession, user: User, origin: Origin | None, *, method: str) -> LoginResult:
        """The last step of every login (the password, or the second factor after it): a session,
        the last-login time and `account:login:success`, in the caller's transaction."""
        token, row = self.start_session_sync(s, user, origin)
        s.connection().execute(_SET_LAST_LOGIN, {"uid": user.id, "now": self.clock.now()})
        self.events.emit_sync(s, "account:login:success", actor=as_actor(user), user=who(user), origin=origin,
                              details={"method": method})
        log.info("login succeeded", extra={"user_id": user.id, "session_id": row.id, "method": method})
        return LoginResult(user=user, session_token=token, session=row)

    async def _confirm_password(self, user: User, password: str, origin: Origin | None, *, action: str) -> str:
        """Check the signed-in user's current password (rate limited like logins); its NFKC form."""
        if not password:
            raise InvalidArgument("Enter your current password.", reason="password_missing")
        normalised = check_length(password)
        async with self.db() as s:
            await self._check_login_limits(s, user.id, origin)
        if not await self.hasher.verify(user.password_hash, normalised):
            async with self.db() as s, s.begin():
                await self._count_failure(s, user.id, origin)
                await self.events.emit(s, "account:reauthenticate:failure", actor=as_actor(user), user=who(user),
                                       origin=origin, details={"reason": "invalid_password", "action": action})
            raise InvalidArgument("The current password is incorrect.", reason="wrong_password")
        return normalised

    async def reauthenticate(self, session_token: str, password: str, origin: Origin | None = None) -> Authenticated:
        """Confirm the password for a sensitive action: refreshes the session's authenticated_at."""
        auth = await self.authenticate_session(session_token)
        normalised = await self._confirm_password(auth.user, password, origin, action="reauthenticate")
        new_hash = await self._upgraded_hash(auth.user.password_hash, normalised)
        now = self.clock.now()
        async with self.db() as s, s.begin():
            await self._store_hash_upgrade(s, auth.user, auth.user.password_hash, new_hash)
            await s.execute(update(Session).where(Session.id == auth.session.id).values(authenticated_at=now))
        auth.session.authenticated_at = now
        return auth

    async def change_password(self, session_token: str, old_password: str, new_password: str,
                              origin: Origin | None = None) -> None:
        """Needs the current password. Ends every other session and voids pending reset links."""
        auth = await self.authenticate_session(session_token)
        user = auth.user
        primary = next((e.address for e in sorted_emails(user) if e.primary), "")
        new = self.policy.check(new_password, username=user.username, email=primary)
        await self._confirm_password(user, old_password, origin, action="change_password")
        new_hash = await self.hasher.hash(new)
        now = self.clock.now()
        async with self.db() as s, s.begin():
            await s.execute(update(User).where(User.id == user.id)
                            .values(password_hash=new_hash, password_changed_at=now))
            ended = await self._revoke_all(s, user.id, keep=auth.session.id)
            await s.execute(update(Session).where(Session.id == auth.session.id).values(authenticated_at=now))
            await self.tokens.void(s, Purpose.PASSWORD_RESET, user_id=user.id)
            await self.events.emit(s, "account:password:change", actor=as_actor(user), user=who(user),
                                   origin=origin, details={"sessions_ended": ended})
        log.info("password changed", extra={"user_id": user.id, "sessions_ended": ended})
