"""What the two-factor flows share: collaborators, settings, re-authentication, notices."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authsvc.accounts.models import User
from authsvc.errors import FailedPrecondition, PermissionDenied
from authsvc.mail import DroppingMailer, Mailer, Message
from authsvc.ratelimit import Limit, RateLimiter
from authsvc.twofactor import recovery
from authsvc.twofactor.pending import PendingLogins
from authsvc.twofactor.policy import TwoFactorPolicy
from authsvc.twofactor.totp import SeedBox
from authsvc.twofactor.webauthn import RelyingParty
from gatehouse.infra.clock import Clock
from gatehouse.infra.outbox import ActorRef, EventEmitter, Origin
from gatehouse.infra.transactions import Transactions

log = logging.getLogger("authsvc.twofactor")


@dataclasses.dataclass(frozen=True)
class TwoFactorConfig:
    public_url: str = "http://localhost:8000"
    issuer: str = "Gatehouse"
    totp_setup_lifetime: dt.timedelta = dt.timedelta(minutes=10)
    challenge_lifetime: dt.timedelta = dt.timedelta(minutes=5)
    max_keys: int = 20
    # One limiter across every second-factor method (PyPI: 5 failures per 5 minutes per user); each
    # used-up window in a row doubles the user's next one, up to a day.
    failures_user: Limit = Limit("2fa:user", 5, 300, "Too many failed second-factor attempts for this account.",
                                 max_window=86400)
    failures_ip: Limit = Limit("2fa:ip", 10, 300, "Too many failed second-factor attempts from your network.")

    @classmethod
    def from_settings(cls, settings) -> "TwoFactorConfig":
        base = cls()
        window = settings.second_factor_window_seconds
        return cls(
            public_url=settings.public_url,
            issuer=settings.totp_issuer,
            challenge_lifetime=dt.timedelta(seconds=min(settings.pending_login_seconds, 600)),
            failures_user=dataclasses.replace(base.failures_user, limit=settings.second_factor_failures_per_user,
                                              window=window, max_window=max(window, settings.second_factor_max_wait_seconds)),
            failures_ip=dataclasses.replace(base.failures_ip, limit=settings.second_factor_failures_per_ip,
                                            window=window),
        )


def who(user: User) -> tuple[str, str]:
    return user.id, user.username


def as_actor(user: User) -> ActorRef:
    return ActorRef.user(user.id, user.username)


def user_handle(user_id: str) -> bytes:
    """The WebAuthn user handle: the user id's 16 bytes (stable, and no personal data)."""
    return uuid.UUID(user_id).bytes


def primary_address(user: User) -> str:
    return next((e.address for e in user.emails if e.primary), "")


class TwoFactorCore:
    def __init__(
        self,
        *,
        db: async_sessionmaker,
        tx: Transactions,
        clock: Clock,
        events: EventEmitter,
        accounts,  # AccountsService: sessions, re-authentication, start_session
        seeds: SeedBox,
        relying_party: RelyingParty,
        pending: PendingLogins,
        policy: TwoFactorPolicy,
        limiter: RateLimiter | None = None,
        mailer: Mailer | None = None,
        config: TwoFactorConfig | None = None,
    ):
        self.db = db
        self.tx = tx  # hot-path transactions as one synchronous function (the second login step)
        self.clock = clock
        self.events = events
        self.accounts = accounts
        self.seeds = seeds
        self.rp = relying_party
        self.pending = pending
        self.policy = policy
        self.limiter = limiter or RateLimiter(clock)
        self.mailer = mailer or DroppingMailer()
        self.config = config or TwoFactorConfig()
        self._mail_tasks: set[asyncio.Task] = set()

    # -- guards ------------------------------------------------------------------------------

    async def _confirm_identity(self, session_token: str, password: str, origin: Origin | None):
        """For removals and new recovery codes: the password, or a session that logged in within
        the re-authentication window. Returns the accounts service's Authenticated."""
        if password:
            return await self.accounts.reauthenticate(session_token, password, origin)
        auth = await self.accounts.authenticate_session(session_token)
        if await self.accounts.reauth_required(auth):
            raise PermissionDenied("Confirm your password to make this change.", reason="reauth_required")
        return auth

    @staticmethod
    def _require_verified_email(user: User) -> None:
        primary = next((e for e in user.emails if e.primary), None)
        if primary is None or not primary.verified:
            raise FailedPrecondition("Verify your primary email address before adding a second factor: it "
                                     "is how you would recover the account.", reason="email_unverified")

    # -- shared steps ------------------------------------------------------------------------

    async def _issue_first_codes(self, s: AsyncSession, user: User, origin: Origin | None,
                                 notices: list[Message]) -> list[str]:
        """Recovery codes for an account whose first second factor is being added."""
        codes = await recovery.replace_codes(s, user.id, self.clock.now())
        await self.events.emit(s, "account:recovery_codes:generated", actor=as_actor(user), user=who(user),
                               origin=origin, details={"count": len(codes)})
        notices.append(self._notice_codes(user, regenerated=False))
        return codes

    def _notice_codes(self, user: User, *, regenerated: bool) -> Message:
        from authsvc.twofactor import notices

        return notices.recovery_codes_issued(to=primary_address(user), username=user.username,
                                             regenerated=regenerated, public_url=self.config.public_url)

    # -- mail --------------------------------------------------------------------------------

    def _send_later(self, messages: list[Message], *, user_id: str) -> None:
        """Mail the notices after the change committed, in the background (a slow relay must not
        hold up the answer); failures are logged, never the body."""
        messages = [m for m in messages if m.to]
        if messages:
            task = asyncio.get_running_loop().create_task(self._deliver(messages, user_id=user_id))
            self._mail_tasks.add(task)
            task.add_done_callback(self._mail_tasks.discard)

    async def _deliver(self, messages: list[Message], *, user_id: str) -> None:
        for message in messages:
            try:
                await self.mailer.send(message)
            except Exception as exc:
                log.error("two-factor notice not delivered", extra={"user_id": user_id, "subject": message.subject,
                                                                    "error": str(exc)[:200]})

    async def close(self, timeout: float = 5.0) -> None:
        if self._mail_tasks:
            await asyncio.wait(set(self._mail_tasks), timeout=timeout)
