"""What the accounts service's parts share: settings, the two-factor seam, user lookups and mail delivery."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from authsvc.accounts.models import Email, User
from authsvc.accounts.validation import canonical_email, canonical_username, is_email, is_username
from authsvc.errors import NotFound
from authsvc.mail import Mailer, MailError, Message
from authsvc.ratelimit import Limit
from gatehouse.infra.outbox import ActorRef, Origin

log = logging.getLogger("authsvc.accounts")


@dataclasses.dataclass(frozen=True)
class AccountsConfig:
    """The accounts service's knobs, taken from the service settings (see `from_settings`)."""

    public_url: str = "http://localhost:8000"
    session_lifetime: dt.timedelta = dt.timedelta(hours=12)
    reauth_after: dt.timedelta = dt.timedelta(minutes=30)
    email_token_lifetime: dt.timedelta = dt.timedelta(hours=24)
    reset_token_lifetime: dt.timedelta = dt.timedelta(hours=1)
    # Whether a login from a new browser and network is held for a mailed link (newdevice.py),
    # and how long that link works.
    new_device_confirmation: bool = True
    login_confirmation_lifetime: dt.timedelta = dt.timedelta(minutes=15)
    # ValidateSession writes last_seen_at at most this often per session.
    touch_interval: dt.timedelta = dt.timedelta(seconds=60)
    # Password attempts per account (by id; an unknown name by its keyed hash): `login_user` per
    # window, each window used up in a row doubling the next up to a day, and `login_day` per day,
    # so an account sees at most about a hundred guesses a day. A login from a device that has
    # logged in before (a valid device token) is limited by `login_device` for that device instead.
    login_user: Limit = Limit("login:user", 10, 300, "Too many failed login attempts for this account.",
                              max_window=86400)
    login_day: Limit = Limit("login:day", 100, 86400, "Too many failed login attempts for this account.")
    login_device: Limit = Limit("login:device", 5, 300, "Too many failed login attempts from this device.",
                                max_window=86400)
    login_ip: Limit = Limit("login:ip", 10, 300, "Too many failed login attempts from your network.")
    device_token_lifetime: dt.timedelta = dt.timedelta(days=180)
    # Mails the owner's own actions send (registration, verification, added addresses)...
    email_user: Limit = Limit("email:user", 5, 3600, "Too many emails were sent to this account.")
    reset_ip: Limit = Limit("reset:ip", 20, 3600, "Too many password reset requests from your network.")
    # ...and reset mails, which anyone may ask for: a budget of their own (so that they never use
    # up the owner's), per account and per account and client IP (silent: the answer is the same).
    reset_user: Limit = Limit("reset:user", 10, 3600)
    reset_user_ip: Limit = Limit("reset:user-ip", 3, 3600)

    @classmethod
    def from_settings(cls, settings) -> "AccountsConfig":
        base = cls()
        return cls(
            public_url=settings.public_url,
            session_lifetime=dt.timedelta(seconds=settings.session_lifetime_seconds),
            reauth_after=dt.timedelta(seconds=settings.reauth_seconds),
            email_token_lifetime=dt.timedelta(seconds=settings.email_token_lifetime_seconds),
            reset_token_lifetime=dt.timedelta(seconds=settings.reset_token_lifetime_seconds),
            login_user=dataclasses.replace(base.login_user, limit=settings.login_failures_per_user,
                                           window=settings.login_window_seconds,
                                           max_window=max(settings.login_max_wait_seconds, settings.login_window_seconds)),
            login_day=dataclasses.replace(base.login_day, limit=settings.login_failures_per_day),
            login_device=dataclasses.replace(base.login_device, limit=settings.login_failures_per_device,
                                             window=settings.login_window_seconds,
                                             max_window=max(settings.login_max_wait_seconds,
                                                            settings.login_window_seconds)),
            device_token_lifetime=dt.timedelta(seconds=settings.device_token_lifetime_seconds),
            new_device_confirmation=settings.new_device_confirmation,
            login_confirmation_lifetime=dt.timedelta(seconds=settings.login_confirmation_lifetime_seconds),
            login_ip=dataclasses.replace(base.login_ip, limit=settings.login_failures_per_ip,
                                         window=settings.login_window_seconds),
            email_user=dataclasses.replace(base.email_user, limit=settings.emails_per_user,
                                           window=settings.email_window_seconds),
            reset_ip=dataclasses.replace(base.reset_ip, limit=settings.reset_requests_per_ip,
                                         window=settings.email_window_seconds),
            reset_user=dataclasses.replace(base.reset_user, limit=settings.reset_mails_per_user,
                                           window=settings.email_window_seconds),
            reset_user_ip=dataclasses.replace(base.reset_user_ip, limit=settings.reset_mails_per_user_ip,
                                              window=settings.email_window_seconds),
        )


class SecondFactor(Protocol):
    """The seam for two-factor login: after a correct password, `login` asks which methods the
    user has; if any, it returns a pending-login token instead of a session. Implemented by the
    two-factor component; `NoSecondFactor` when none is wired in."""

    async def methods(self, s: AsyncSession, user: User) -> Sequence[str]:
        """The second-factor methods the user has set up ("totp", "webauthn", "recovery_code")."""

    async def start_pending_login(self, s: AsyncSession, user: User, origin: Origin) -> str:
        """After a correct password: a short-lived single-use token for the second step."""


class NoSecondFactor:
    async def methods(self, s: AsyncSession, user: User) -> Sequence[str]:
        return ()

    async def start_pending_login(self, s: AsyncSession, user: User, origin: Origin) -> str:
        raise RuntimeError("two-factor login is not available")


def who(user: User) -> tuple[str, str]:
    return user.id, user.username


def as_actor(user: User) -> ActorRef:
    return ActorRef.user(user.id, user.username)


def ip_subject(origin: Origin | None) -> str:
    """Calls without a client IP share one bucket: fail closed rather than unlimited."""
    return (origin.ip_address if origin and origin.ip_address else "unknown")[:64]


def sorted_emails(user: User) -> list[Email]:
    return sorted(user.emails, key=lambda e: (not e.primary, e.created_at, e.address_canonical))


# -- lookups (in the caller's transaction) ------------------------------------------------------

async def user_by_username(s: AsyncSession, username: str) -> User | None:
    if not is_username(username or ""):
        return None
    return await s.scalar(select(User).where(User.username_canonical == canonical_username(username)))


async def require_user(s: AsyncSession, username: str) -> User:
    """The named account or NotFound."""
    user = await user_by_username(s, username)
    if user is None:
        raise NotFound(f"There is no user named {username[:60]!r}.", reason="user_not_found")
    return user


async def email_row(s: AsyncSession, address: str) -> Email | None:
    if not is_email(address):
        return None
    return await s.scalar(select(Email).where(Email.address_canonical == canonical_email(address)))


async def find_by_login(s: AsyncSession, login: str) -> tuple[User | None, Email | None]:
    """The account named by a username or one of its email addresses (and that address)."""
    if "@" in login:
        email = await email_row(s, login)
        return (await s.get(User, email.user_id), email) if email else (None, None)
    return await user_by_username(s, login), None


class MailDelivery:
    """Sends the accounts service's mail; a failure is logged (the cause, never the body, which
    holds a token) and reported as False, so it never undoes the committed change that sent it."""

    def __init__(self, mailer: Mailer):
        self.mailer = mailer

    async def deliver(self, message: Message, *, purpose: str, user_id: str) -> bool:
        try:
            await self.mailer.send(message)
        except MailError as exc:
            log.error("mail delivery failed", extra={"purpose": purpose, "user_id": user_id, "error": str(exc)})
            return False
        except Exception as exc:  # a broken transport must not undo the committed change
            log.error("mail delivery failed", extra={"purpose": purpose, "user_id": user_id,
                                                     "error": type(exc).__name__})
            return False
        log.info("mail sent", extra={"purpose": purpose, "user_id": user_id})
        return True
