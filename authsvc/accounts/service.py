"""Accounts: users, emails, passwords and sessions (the domain layer; no protobuf here)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authsvc.accounts.models import Email, Session, User
from authsvc.accounts.passwords import PasswordHasher, PasswordPolicy
from authsvc.errors import (
    AccountDisabled,
    AlreadyExists,
    InvalidArgument,
    InvalidCredentials,
    SessionInvalid,
)
from gatehouse.infra.clock import Clock, as_utc
from gatehouse.infra.outbox import ANONYMOUS, ActorRef, EventEmitter, Origin

# PyPI's username rule: letters, digits, and . _ - inside; starts and ends alphanumeric; ≤ 50.
USERNAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,48}[A-Za-z0-9])?$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def token_digest(token: str) -> bytes:
    """Stored form of a high-entropy secret (session or emailed token): its SHA-256."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def canonical_username(username: str) -> str:
    return username.lower()


def canonical_email(address: str) -> str:
    return address.strip().lower()


def check_username(username: str) -> str:
    if not username:
        raise InvalidArgument("Enter a username.", reason="username_missing")
    if not USERNAME_RE.match(username):
        raise InvalidArgument(
            "The username is invalid: use at most 50 letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit.", reason="username_invalid")
    return username


def check_email(address: str) -> str:
    address = (address or "").strip()
    if not address:
        raise InvalidArgument("Enter an email address.", reason="email_missing")
    if len(address) > 254 or not EMAIL_RE.match(address) or any(c in address for c in "\r\n<>,;"):
        raise InvalidArgument("The email address is not valid.", reason="email_invalid")
    return address


@dataclasses.dataclass(frozen=True)
class Authenticated:
    """A user resolved from a session token."""

    user: User
    session: Session


@dataclasses.dataclass(frozen=True)
class LoginResult:
    user: User
    session_token: str | None
    session: Session | None


class AccountsService:
    def __init__(
        self,
        *,
        db: async_sessionmaker,
        clock: Clock,
        hasher: PasswordHasher,
        policy: PasswordPolicy,
        events: EventEmitter,
        session_lifetime: dt.timedelta,
    ):
        self.db = db
        self.clock = clock
        self.hasher = hasher
        self.policy = policy
        self.events = events
        self.session_lifetime = session_lifetime

    # -- users -------------------------------------------------------------------------------

    async def create_user(
        self,
        username: str,
        email: str,
        password: str | None,
        *,
        name: str = "",
        email_verified: bool = False,
        is_admin: bool = False,
        actor: ActorRef = ANONYMOUS,
        origin: Origin | None = None,
    ) -> User:
        check_username(username)
        email = check_email(email)
        if len(name) > 100:
            raise InvalidArgument("The name is too long: at most 100 characters.", reason="name_too_long")
        password_hash = None
        if password is not None:
            normalised = self.policy.check(password, username=username, email=email)
            password_hash = await self.hasher.hash(normalised)
        now = self.clock.now()
        async with self.db() as s, s.begin():
            await self._ensure_free(s, username, email)
            user = User(
                username=username, username_canonical=canonical_username(username), name=name,
                password_hash=password_hash, password_changed_at=now if password_hash else None,
                is_active=True, is_admin=is_admin, created_at=now,
            )
            user.emails = [Email(address=email, address_canonical=canonical_email(email),
                                 verified=email_verified, primary=True,
                                 verified_at=now if email_verified else None, created_at=now)]
            s.add(user)
            try:
                await s.flush()
            except IntegrityError:
                raise AlreadyExists("That username or email address is already in use.",
                                    reason="account_exists") from None
            who = (user.id, user.username)
            await self.events.emit(s, "account:create", actor=actor if actor.kind != "anonymous"
                                   else ActorRef.user(*who), user=who, origin=origin,
                                   details={"email_verified": email_verified})
        return user

    async def _ensure_free(self, s: AsyncSession, username: str, email: str) -> None:
        taken = await s.scalar(select(User.id).where(User.username_canonical == canonical_username(username)))
        if taken:
            raise AlreadyExists("This username is already in use. Choose another.", reason="username_taken")
        taken = await s.scalar(select(Email.id).where(Email.address_canonical == canonical_email(email)))
        if taken:
            raise AlreadyExists("This email address is already in use by another account.",
                                reason="email_taken")

    async def get_by_username(self, username: str) -> User | None:
        async with self.db() as s:
            return await s.scalar(select(User).where(User.username_canonical == canonical_username(username)))

    # -- sessions ----------------------------------------------------------------------------

    async def start_session(self, s: AsyncSession, user: User, origin: Origin | None) -> tuple[str, Session]:
        """Create a session inside the caller's transaction; returns (token, row)."""
        now = self.clock.now()
        token = new_secret()
        origin = origin or Origin()
        row = Session(token_hash=token_digest(token), user_id=user.id, created_at=now, last_seen_at=now,
                      expires_at=now + self.session_lifetime, authenticated_at=now,
                      ip_address=origin.ip_address[:64], user_agent=origin.user_agent[:300])
        s.add(row)
        await s.flush()
        return token, row

    async def authenticate_session(self, session_token: str) -> Authenticated:
        """The signed-in user of a session token, or SessionInvalid / AccountDisabled."""
        if not session_token:
            raise SessionInvalid("Log in first.")
        now = self.clock.now()
        async with self.db() as s:
            row = await s.scalar(select(Session).where(Session.token_hash == token_digest(session_token)))
            if row is None or row.revoked_at is not None or as_utc(row.expires_at) <= now:
                raise SessionInvalid()
            user = await s.get(User, row.user_id)
            if user is None:
                raise SessionInvalid()
            if not user.is_active:
                raise AccountDisabled()
            return Authenticated(user=user, session=row)

    # -- login -------------------------------------------------------------------------------

    async def login(self, username: str, password: str, origin: Origin | None = None) -> LoginResult:
        """Password login. Unknown user and wrong password get the same answer and cost."""
        if not username or not password:
            raise InvalidCredentials()
        async with self.db() as s:
            user = await self._find_login_user(s, username)
        ok = await self.hasher.verify(user.password_hash if user else None, password)
        async with self.db() as s, s.begin():
            if not ok or user is None:
                if user is not None:
                    await self.events.emit(s, "account:login:failure", actor=ActorRef.user(user.id, user.username),
                                           user=(user.id, user.username), origin=origin,
                                           details={"reason": "invalid_password"})
                raise_after = InvalidCredentials()
            else:
                raise_after = None
        if raise_after:
            raise raise_after
        if not user.is_active:
            raise AccountDisabled()
        async with self.db() as s, s.begin():
            user = await s.get(User, user.id)
            if self.hasher.needs_rehash(user.password_hash):
                user.password_hash = await self.hasher.hash(password)
            user.last_login_at = self.clock.now()
            token, row = await self.start_session(s, user, origin)
            await self.events.emit(s, "account:login:success", actor=ActorRef.user(user.id, user.username),
                                   user=(user.id, user.username), origin=origin,
                                   details={"method": "password"})
        return LoginResult(user=user, session_token=token, session=row)

    async def _find_login_user(self, s: AsyncSession, login: str) -> User | None:
        if "@" in login:
            email = await s.scalar(select(Email).where(Email.address_canonical == canonical_email(login)))
            return await s.get(User, email.user_id) if email else None
        return await s.scalar(select(User).where(User.username_canonical == canonical_username(login)))
