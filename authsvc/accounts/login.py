"""Password login, re-authentication and password change, with the failed-login rate limits.

Every password attempt first takes a slot from its limits (per client IP, and per account: by
its id however it was named, or by a keyed hash of an unknown name; or per device when the
login carries a valid device token of the account) in one atomic step, and only then is the
password checked; a right password gives the slot back. So attempts sent together run at most
the limit's number of password checks, and the right password does not help while limited.

Unknown accounts and wrong passwords get the same answer at the same cost: one argon2
verification (against a dummy hash when there is no account), the same limiter writes, an
event. A known account's failures go to its user log (`account:login:failure`); an unknown
name's to the admin log (the same tag, no subject user, the name's keyed hash).
"""

from __future__ import annotations

import dataclasses
import logging

from sqlalchemy import bindparam, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session as OrmSession

from authsvc.accounts.core import (AccountsConfig, MailDelivery, SecondFactor, as_actor, find_by_login, ip_subject,
                                   sorted_emails, who)
from authsvc.accounts.devices import DeviceTokens
from authsvc.accounts.emailtokens import OneTimeTokens, Purpose
from authsvc.accounts.models import Session, User
from authsvc.accounts.newdevice import NewDeviceCheck
from authsvc.accounts.passwords import PasswordHasher, PasswordPolicy, check_length
from authsvc.accounts.sessions import Authenticated, Sessions
from authsvc.errors import AccountDisabled, InvalidArgument, InvalidCredentials
from authsvc.mail import Message
from authsvc.ratelimit import Acquired, Limit, RateLimiter
from gatehouse.infra.clock import Clock
from gatehouse.infra.outbox import ANONYMOUS, EventEmitter, Origin

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
    # The device token to keep (cookie) and pass with the next Login: set when the password was right.
    device_token: str = ""
    # Set instead of a session when the login is held for new-device confirmation (newdevice.py):
    # the gateway keeps it in this browser's cookie, for the link mailed to the user.
    held_browser_token: str = ""


class PasswordLogin:
    """Password login (then the second factor's seam), re-authentication and password change."""

    def __init__(self, *, db: async_sessionmaker, clock: Clock, events: EventEmitter, config: AccountsConfig,
                 hasher: PasswordHasher, policy: PasswordPolicy, limiter: RateLimiter, devices: DeviceTokens,
                 tokens: OneTimeTokens, sessions: Sessions, second_factor: SecondFactor,
                 new_devices: NewDeviceCheck, mail: MailDelivery):
        self.db = db
        self.clock = clock
        self.events = events
        self.config = config
        self.hasher = hasher
        self.policy = policy
        self.limiter = limiter
        self.devices = devices
        self.tokens = tokens
        self.sessions = sessions
        self.second_factor = second_factor
        self.new_devices = new_devices
        self.mail = mail

    def _login_limits(self, subject: str, origin: Origin | None, device: str | None = None) -> list[tuple[Limit, str]]:
        """The limits a password attempt takes a slot from: the client IP's, then the device's
        (a valid device token) or else the account's per window and per day."""
        limits = [(self.config.login_ip, ip_subject(origin))]
        if device is not None:
            return [*limits, (self.config.login_device, f"{subject}:{device}")]
        return [*limits, (self.config.login_user, subject), (self.config.login_day, subject)]

    async def _take_attempt(self, limits: list[tuple[Limit, str]], *, refused_event) -> Acquired:
        """Take the attempt's slots (committed before the password is checked); when refused,
        record the refusal's event in the same transaction and raise RateLimited."""
        async with self.db() as s, s.begin():
            taken = await self.limiter.acquire(s, limits)
            if taken.refused is not None:
                await refused_event(s, taken)
        if taken.refused is not None:
            log.info("login rate limited", extra={"limit": taken.limit.name})
            raise taken.refused
        return taken

    async def _login_failure_event(self, s: AsyncSession, user: User | None, subject: str, origin: Origin | None,
                                   details: dict[str, object]) -> None:
        """`account:login:failure`: in the user's log, or for an unknown name the admin log."""
        if user is None:
            details = {**details, "name_hash": subject.removeprefix("name:")}
        await self.events.emit(s, "account:login:failure", actor=ANONYMOUS, user=who(user) if user else None,
                               origin=origin, details={**details, "method": "password"})

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

    async def login(self, login: str, password: str, origin: Origin | None = None,
                    device_token: str = "") -> LoginResult:
        """Password login: a session, or the second-factor step when the user has one. Refused
        at once (HashingBusy) when the password hashing queue is full."""
        async with self.hasher.admission():
            return await self._login(login, password, origin, device_token)

    async def _login(self, login: str, password: str, origin: Origin | None, device_token: str) -> LoginResult:
        origin = origin or Origin()
        login = (login or "").strip()
        if not login:
            raise InvalidArgument("Enter your username or email address.", reason="login_missing")
        if not password:
            raise InvalidArgument("Enter your password.", reason="password_missing")
        normalised = check_length(password)
        async with self.db() as s:
            user, _ = await find_by_login(s, login)
        subject = user.id if user else self.devices.name_subject(login)
        device = self.devices.device_of(device_token, user.id) if user is not None else None

        async def refused(s: AsyncSession, taken: Acquired) -> None:
            await self._login_failure_event(s, user, subject, origin, {
                "reason": "rate_limited", "limit": taken.limit.name, "retry_after": taken.refused.retry_after})

        taken = await self._take_attempt(self._login_limits(subject, origin, device), refused_event=refused)
        stored = user.password_hash if user else None
        try:
            right = await self.hasher.verify(stored, normalised)
        except Exception:  # not checked (e.g. the hashing queue refused it): not a failure either
            async with self.db() as s, s.begin():
                await self.limiter.release(s, taken.slots)
            raise
        if not right:
            async with self.db() as s, s.begin():  # the slots stay taken: they count this failure
                reason = "unknown_user" if user is None else "invalid_password" if stored else "no_password"
                await self._login_failure_event(s, user, subject, origin, {
                    "reason": reason, **({"device": "known"} if device is not None else {})})
            log.info("login failed", extra={"reason": "invalid_credentials"})
            raise InvalidCredentials()
        if not user.is_active:
            async with self.db() as s, s.begin():
                await self.limiter.release(s, taken.slots)
                await self._login_failure_event(s, user, subject, origin, {"reason": "account_disabled"})
            raise AccountDisabled()
        new_hash = await self._upgraded_hash(stored, normalised)
        device_token = self.devices.issue(user.id, device or "")
        sent: list[Message] = []
        async with self.db() as s, s.begin():
            await self.limiter.release(s, taken.slots)
            await self._store_hash_upgrade(s, user, stored, new_hash)
            methods = tuple(await self.second_factor.methods(s, user))
            if methods:
                pending = await self.second_factor.start_pending_login(s, user, origin)
                return LoginResult(user=user, second_factor_required=True, pending_login_token=pending,
                                   second_factor_methods=methods, device_token=device_token)
            result = await s.run_sync(self.finish_login_sync, user, origin, method="password",
                                      device_token=device_token, sent=sent)
        for message in sent:  # the confirmation link of a held login, after its commit
            await self.mail.deliver(message, purpose="login_confirmation", user_id=user.id)
        return dataclasses.replace(result, device_token=device_token)

    def finish_login_sync(self, s: OrmSession, user: User, origin: Origin | None, *, method: str,
                          device_token: str, sent: list[Message]) -> LoginResult:
        """The last step of every login (the password, or the second factor after it), in the
        caller's transaction: held when from a new browser and network (its mail added to `sent`),
        else a session."""
        device = self.devices.device_of(device_token, user.id)
        held = self.new_devices.check_sync(s, user, origin or Origin(), method=method, device=device)
        if held is not None:
            sent.append(held.mail)
            return LoginResult(user=user, held_browser_token=held.browser_token)
        return self._start_session_sync(s, user, origin, method=method)

    async def confirm_login(self, link_token: str, browser_token: str, origin: Origin | None = None) -> LoginResult:
        """Follow a held login's mailed link (in the browser that started it): its session."""
        origin = origin or Origin()

        def confirm(s: OrmSession) -> LoginResult:
            held, user = self.new_devices.confirm_sync(s, link_token, browser_token, origin)
            return self._start_session_sync(s, user, origin, method=held.method)

        async with self.db() as s, s.begin():
            return await s.run_sync(confirm)

    def _start_session_sync(self, s: OrmSession, user: User, origin: Origin | None, *, method: str) -> LoginResult:
        """A session, the last-login time and `account:login:success`, in the caller's transaction."""
        token, row = self.sessions.start_session_sync(s, user, origin, method)
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

        async def refused(s: AsyncSession, taken: Acquired) -> None:
            await self.events.emit(s, "account:reauthenticate:failure", actor=as_actor(user), user=who(user),
                                   origin=origin, details={"reason": "rate_limited", "action": action,
                                                           "limit": taken.limit.name})

        taken = await self._take_attempt(self._login_limits(user.id, origin), refused_event=refused)
        if not await self.hasher.verify(user.password_hash, normalised):
            async with self.db() as s, s.begin():
                await self.events.emit(s, "account:reauthenticate:failure", actor=as_actor(user), user=who(user),
                                       origin=origin, details={"reason": "invalid_password", "action": action})
            raise InvalidArgument("The current password is incorrect.", reason="wrong_password")
        async with self.db() as s, s.begin():
            await self.limiter.release(s, taken.slots)
        return normalised

    async def reauthenticate(self, session_token: str, password: str, origin: Origin | None = None) -> Authenticated:
        """Confirm the password for a sensitive action: refreshes the session's authenticated_at."""
        auth = await self.sessions.authenticate_session(session_token)
        normalised = await self._confirm_password(auth.user, password, origin, action="reauthenticate")
        new_hash = await self._upgraded_hash(auth.user.password_hash, normalised)
        now = self.clock.now()
        async with self.db() as s, s.begin():
            await self._store_hash_upgrade(s, auth.user, auth.user.password_hash, new_hash)
            await s.execute(update(Session).where(Session.id == auth.session.id).values(authenticated_at=now))
        auth.session.authenticated_at = now
        return auth

    async def change_password(self, session_token: str, old_password: str, new_password: str,
                              origin: Origin | None = None) -> User:
        """Needs the current password. Ends every other session and voids pending reset links.
        Returns the user (for the notice mail)."""
        auth = await self.sessions.authenticate_session(session_token)
        user = auth.user
        primary = next((e.address for e in sorted_emails(user) if e.primary), "")
        new = self.policy.check(new_password, username=user.username, email=primary)
        await self._confirm_password(user, old_password, origin, action="change_password")
        new_hash = await self.hasher.hash(new)
        now = self.clock.now()
        async with self.db() as s, s.begin():
            await s.execute(update(User).where(User.id == user.id)
                            .values(password_hash=new_hash, password_changed_at=now))
            ended = await self.sessions.revoke_all(s, user.id, keep=auth.session.id)
            await s.execute(update(Session).where(Session.id == auth.session.id).values(authenticated_at=now))
            await self.tokens.void(s, Purpose.PASSWORD_RESET, user_id=user.id)
            await self.events.emit(s, "account:password:change", actor=as_actor(user), user=who(user),
                                   origin=origin, details={"sessions_ended": ended})
        log.info("password changed", extra={"user_id": user.id, "sessions_ended": ended})
        return user
