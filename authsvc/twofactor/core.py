"""What the two-factor parts share: settings, re-authentication, recovery codes and notice mail."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from authsvc.accounts.models import User
from authsvc.accounts.service import AccountsService
from authsvc.accounts.sessions import Authenticated
from authsvc.errors import FailedPrecondition, PermissionDenied
from authsvc.mail import Mailer, Message
from authsvc.notices import Notifier
from authsvc.ratelimit import Limit
from authsvc.twofactor import notices, recovery
from gatehouse.infra.clock import Clock
from gatehouse.infra.outbox import ActorRef, EventEmitter, Origin


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
    # Passkey logins started per client IP (each stores a challenge until it is used or expires).
    passkey_begin_ip: Limit = Limit("passkey:begin:ip", 60, 60, "Too many passkey sign-ins started from your "
                                    "network. Wait a minute.")

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


async def confirm_identity(accounts: AccountsService, session_token: str, password: str,
                           origin: Origin | None) -> Authenticated:
    """For removals and new recovery codes: the password, or a session that logged in within
    the re-authentication window."""
    if password:
        return await accounts.reauthenticate(session_token, password, origin)
    auth = await accounts.authenticate_session(session_token)
    if await accounts.reauth_required(auth):
        raise PermissionDenied("Confirm your password to make this change.", reason="reauth_required")
    return auth


def require_verified_email(user: User) -> None:
    primary = next((e for e in user.emails if e.primary), None)
    if primary is None or not primary.verified:
        raise FailedPrecondition("Verify your primary email address before adding a second factor: it "
                                 "is how you would recover the account.", reason="email_unverified")


class Notices:
    """Recovery codes issued with a first factor, and the notice mails of every change, sent after
    the change committed, in the background (a slow relay must not hold up the answer); a failure
    is logged, never the body."""

    def __init__(self, *, clock: Clock, events: EventEmitter, mailer: Mailer, config: TwoFactorConfig):
        self.clock = clock
        self.events = events
        self.mailer = mailer
        self.config = config
        self.delivery = Notifier(mailer, public_url=config.public_url)

    async def issue_first_codes(self, s: AsyncSession, user: User, origin: Origin | None,
                                sent: list[Message]) -> list[str]:
        """Recovery codes for an account whose first second factor is being added."""
        codes = await recovery.replace_codes(s, user.id, self.clock.now())
        await self.events.emit(s, "account:recovery_codes:generated", actor=as_actor(user), user=who(user),
                               origin=origin, details={"count": len(codes)})
        sent.append(self.codes_issued(user, regenerated=False))
        return codes

    def codes_issued(self, user: User, *, regenerated: bool) -> Message:
        return notices.recovery_codes_issued(to=primary_address(user), username=user.username,
                                             regenerated=regenerated, public_url=self.config.public_url)

    def send_later(self, messages: list[Message], *, user_id: str) -> None:
        self.delivery.send_later(messages, purpose="two_factor", user_id=user_id)

    async def close(self, timeout: float = 5.0) -> None:
        await self.delivery.close(timeout)
