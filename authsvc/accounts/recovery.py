"""Password reset by an emailed single-use link.

Asking for a reset gives the same answer, after the same work, whether or not the account
exists: the request path only counts the client IP; finding the account, issuing the link (with
its audit event, in one transaction) and mailing it happen in the background after the answer. The link expires within an hour, works once, and
is void once the password changes (by any means) after it was issued. A reset ends every session
and never logs in: the user then logs in normally, second factor included.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authsvc.accounts import messages
from authsvc.accounts.background import Background
from authsvc.accounts.core import AccountsConfig, MailDelivery, SecondFactor, find_by_login, ip_subject, who
from authsvc.accounts.emailtokens import OneTimeTokens, Purpose
from authsvc.accounts.models import Email, User
from authsvc.accounts.passwords import PasswordHasher, PasswordPolicy
from authsvc.accounts.sessions import Sessions
from authsvc.errors import AccountDisabled, InvalidArgument
from authsvc.ratelimit import RateLimiter
from gatehouse.infra.clock import Clock
from gatehouse.infra.outbox import ANONYMOUS, ActorRef, EventEmitter, Origin

log = logging.getLogger("authsvc.accounts")


@dataclasses.dataclass(frozen=True)
class ResetResult:
    user: User
    second_factor_required: bool


class PasswordReset:
    """Password reset: the request (answered at once, the rest in `background`) and the reset."""

    def __init__(self, *, db: async_sessionmaker, clock: Clock, events: EventEmitter, config: AccountsConfig,
                 hasher: PasswordHasher, policy: PasswordPolicy, limiter: RateLimiter, tokens: OneTimeTokens,
                 sessions: Sessions, second_factor: SecondFactor, mail: MailDelivery, background: Background):
        self.db = db
        self.clock = clock
        self.events = events
        self.config = config
        self.hasher = hasher
        self.policy = policy
        self.limiter = limiter
        self.tokens = tokens
        self.sessions = sessions
        self.second_factor = second_factor
        self.mail = mail
        self.background = background
        self._reset_lock = asyncio.Lock()

    async def _reset_address(self, s: AsyncSession, user: User, named: Email | None) -> str:
        """The address named in the request when it is a verified one of the account's; else the
        primary address."""
        if named is not None and named.verified:
            return named.address
        primary = next((e for e in user.emails if e.primary), None)
        return primary.address if primary else ""

    async def request_password_reset(self, login: str, origin: Origin | None = None) -> None:
        """Mail a reset link when the account exists, is active and may receive mail; always
        return the same (nothing), after the same work: the client IP's limit
        (RESOURCE_EXHAUSTED for everyone alike). Everything that depends on the account happens
        after the answer (`_mail_reset`)."""
        origin = origin or Origin()
        login = (login or "").strip()
        if not login:
            raise InvalidArgument("Enter your username or email address.", reason="login_missing")
        async with self.db() as s, s.begin():
            await self.limiter.check(s, self.config.reset_ip, ip_subject(origin))
            await self.limiter.hit(s, self.config.reset_ip, ip_subject(origin))
        self.background.submit(lambda: self._mail_reset(login, origin), what="password_reset")

    async def _mail_reset(self, login: str, origin: Origin) -> None:
        """The link, its audit event (one transaction) and then the mail, within the reset mails'
        own budgets: per account, and per account and client IP, so that anonymous requests
        never use up the mail the owner's own actions need, and one address cannot use up an
        account's resets. Over budget, nothing is sent (the requester was answered already)."""
        async with self._reset_lock, self.db() as s, s.begin():
            user, named = await find_by_login(s, login)
            if user is None or not user.is_active:
                return
            # The budgets' check and count are one step: one job at a time here, and the account's
            # row locked against other replicas (PostgreSQL; SQLite has one writer anyway).
            await s.execute(select(User.id).where(User.id == user.id).with_for_update())
            address = await self._reset_address(s, user, named)
            if not address:
                return
            budgets = ((self.config.reset_user, user.id),
                       (self.config.reset_user_ip, f"{user.id}:{ip_subject(origin)}"))
            for limit, subject in budgets:
                if (await self.limiter.status(s, limit, subject)).limited:
                    log.info("password reset mail suppressed by a rate limit",
                             extra={"user_id": user.id, "limit": limit.name})
                    return
            for limit, subject in budgets:
                await self.limiter.hit(s, limit, subject)
            lifetime = self.config.reset_token_lifetime
            token = await self.tokens.issue(s, Purpose.PASSWORD_RESET, user_id=user.id, email_id=None,
                                            lifetime=lifetime)
            await self.events.emit(s, "account:password:reset:request", actor=ANONYMOUS, user=who(user),
                                   origin=origin, details={"email": address})
            message = messages.password_reset(public_url=self.config.public_url, to=address,
                                              username=user.username, token=token, lifetime=lifetime)
        await self.mail.deliver(message, purpose="password_reset", user_id=user.id)

    async def reset_password(self, token: str, new_password: str, origin: Origin | None = None) -> ResetResult:
        """Set a new password from a reset link; ends all sessions; creates none."""
        async with self.db() as s:
            peeked = await self.tokens.peek(s, Purpose.PASSWORD_RESET, token)
            user = await s.get(User, peeked.user_id)
        primary = next((e.address for e in user.emails if e.primary), "")
        new = self.policy.check(new_password, username=user.username, email=primary)
        new_hash = await self.hasher.hash(new)
        now = self.clock.now()
        async with self.db() as s, s.begin():
            await self.tokens.consume(s, Purpose.PASSWORD_RESET, token)
            user = await s.get(User, peeked.user_id, populate_existing=True)
            if not user.is_active:
                raise AccountDisabled()
            await s.execute(update(User).where(User.id == user.id)
                            .values(password_hash=new_hash, password_changed_at=now))
            ended = await self.sessions.revoke_all(s, user.id)
            await self.tokens.void(s, Purpose.PASSWORD_RESET, user_id=user.id)
            # The owner read the reset mail: other people's failed guesses no longer keep them out.
            await self.limiter.forget(s, [(self.config.login_user, user.id), (self.config.login_day, user.id)])
            second_factor = bool(await self.second_factor.methods(s, user))
            await self.events.emit(s, "account:password:reset", actor=ActorRef.user(user.id, user.username),
                                   user=who(user), origin=origin, details={"sessions_ended": ended})
        log.info("password reset", extra={"user_id": user.id, "sessions_ended": ended})
        return ResetResult(user=user, second_factor_required=second_factor)
