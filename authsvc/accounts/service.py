"""Accounts: users, emails, passwords and sessions (the domain layer; no protobuf here).

`AccountsService` is the one object the gRPC adapters and the other areas call. It composes
subject-sized parts, each a plain class given its collaborators: `Sessions` (`sessions.py`),
`PasswordLogin` (login, re-authentication, password change: `login.py`) and `PasswordReset`
(`recovery.py`); it does registration, email addresses and the operator actions itself. Other
areas resolve users with `authenticate_session`.

Audit events (outbox, same transaction): account:create, account:email:add,
account:email:verified, account:email:primary:change (old and new address),
account:login:success (method), account:login:failure (reason, including
"rate_limited"; an unknown name's has no subject user: the admin log), account:reauthenticate:failure,
account:password:change, account:password:reset:request, account:password:reset,
account:session:revoke, account:disable / account:enable, account:admin:grant / account:admin:revoke.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session as OrmSession

from authsvc.accounts import messages
from authsvc.accounts.background import Background
from authsvc.accounts.core import (
    AccountsConfig,
    MailDelivery,
    NoSecondFactor,
    SecondFactor,
    as_actor,
    require_user,
    sorted_emails,
    user_by_username,
    who,
)
from authsvc.accounts.devices import DeviceTokens
from authsvc.accounts.newdevice import NewDeviceCheck
from authsvc.accounts.emailtokens import OneTimeTokens, Purpose
from authsvc.accounts.login import LoginResult, PasswordLogin
from authsvc.accounts.models import Email, Session, User
from authsvc.accounts.passwords import PasswordHasher, PasswordPolicy
from authsvc.accounts.recovery import PasswordReset, ResetResult
from authsvc.accounts.sessions import Authenticated, Sessions
from authsvc.accounts.validation import (  # noqa: F401  (re-exported: other areas import these here)
    canonical_email,
    canonical_username,
    check_email,
    check_name,
    check_username,
    new_secret,
    token_digest,
)
from authsvc.errors import (
    AccountDisabled,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from authsvc.mail import DroppingMailer, Mailer, Message
from authsvc.notices import Notifier, notice_address
from authsvc.ratelimit import RateLimiter
from gatehouse.infra.clock import Clock
from gatehouse.infra.errors import Unavailable
from gatehouse.infra.outbox import ANONYMOUS, ActorRef, EventEmitter, Origin

__all__ = ["AccountsService", "AccountsConfig", "Authenticated", "LoginResult", "ResetResult",
           "SecondFactor", "NoSecondFactor"]

MAX_DISABLED_REASON = 200


def _not_your_address() -> NotFound:
    """The refusal of an address the account does not have (another account's: the same answer)."""
    return NotFound("That address is not one of your account's email addresses.", reason="email_not_found")


class AccountsService:
    """The accounts façade: its own flows (users, email addresses, operator actions) and the
    parts' (sessions, login, reset), under one object."""

    def __init__(
        self,
        *,
        db: async_sessionmaker,
        clock: Clock,
        hasher: PasswordHasher,
        policy: PasswordPolicy,
        events: EventEmitter,
        limiter: RateLimiter | None = None,
        mailer: Mailer | None = None,
        config: AccountsConfig | None = None,
        second_factor: SecondFactor | None = None,
        devices: DeviceTokens | None = None,
        notifier: Notifier | None = None,
    ):
        self.db = db
        self.clock = clock
        self.hasher = hasher
        self.policy = policy
        self.events = events
        self.limiter = limiter or RateLimiter(clock)
        self.config = config or AccountsConfig()
        self.mail = MailDelivery(mailer or DroppingMailer())
        self.notifier = notifier  # security notices (password changed, address added)
        self.tokens = OneTimeTokens(clock)
        self.background = Background()  # what is done after answering (password-reset requests)
        devices = devices or DeviceTokens([(1, secrets.token_bytes(32))], clock=clock,
                                          lifetime=self.config.device_token_lifetime)
        second_factor = second_factor or NoSecondFactor()
        self.sessions = Sessions(db=db, clock=clock, events=events, config=self.config)
        new_devices = NewDeviceCheck(clock=clock, events=events, public_url=self.config.public_url,
                                     lifetime=self.config.login_confirmation_lifetime,
                                     enabled=self.config.new_device_confirmation)
        self.logins = PasswordLogin(db=db, clock=clock, events=events, config=self.config, hasher=hasher,
                                    policy=policy, limiter=self.limiter, devices=devices, tokens=self.tokens,
                                    sessions=self.sessions, second_factor=second_factor, new_devices=new_devices,
                                    mail=self.mail)
        self.resets = PasswordReset(db=db, clock=clock, events=events, config=self.config, hasher=hasher,
                                    policy=policy, limiter=self.limiter, tokens=self.tokens, sessions=self.sessions,
                                    second_factor=second_factor, mail=self.mail, background=self.background)
        self._second_factor = second_factor

    @property
    def second_factor(self) -> SecondFactor:
        """The two-factor seam (`SecondFactor`), which the login and reset parts ask too."""
        return self._second_factor

    @second_factor.setter
    def second_factor(self, value: SecondFactor) -> None:
        self._second_factor = self.logins.second_factor = self.resets.second_factor = value

    async def close(self, timeout: float = 5.0) -> None:
        """Let background work (password-reset mail) finish, bounded, at shutdown."""
        await self.background.close(timeout)

    # -- the parts' flows --------------------------------------------------------------------

    async def authenticate_session(self, session_token: str) -> Authenticated:
        return await self.sessions.authenticate_session(session_token)

    async def reauth_required(self, auth: Authenticated) -> bool:
        return await self.sessions.reauth_required(auth)

    async def list_sessions(self, session_token: str) -> tuple[Authenticated, list[Session]]:
        return await self.sessions.list_sessions(session_token)

    async def revoke_session(self, session_token: str, session_id: str, origin: Origin | None = None) -> None:
        await self.sessions.revoke_session(session_token, session_id, origin)

    async def logout(self, session_token: str, origin: Origin | None = None) -> None:
        await self.sessions.logout(session_token, origin)

    async def login(self, login: str, password: str, origin: Origin | None = None,
                    device_token: str = "") -> LoginResult:
        return await self.logins.login(login, password, origin, device_token)

    def finish_login_sync(self, s: OrmSession, user: User, origin: Origin | None, *, method: str,
                          device_token: str, sent: list[Message]) -> LoginResult:
        """The last step of a login after the second factor (the two-factor area's call)."""
        return self.logins.finish_login_sync(s, user, origin, method=method, device_token=device_token, sent=sent)

    async def confirm_login(self, link_token: str, browser_token: str, origin: Origin | None = None) -> LoginResult:
        return await self.logins.confirm_login(link_token, browser_token, origin)

    async def reauthenticate(self, session_token: str, password: str, origin: Origin | None = None) -> Authenticated:
        return await self.logins.reauthenticate(session_token, password, origin)

    async def change_password(self, session_token: str, old_password: str, new_password: str,
                              origin: Origin | None = None) -> None:
        self._password_changed(await self.logins.change_password(session_token, old_password, new_password, origin))

    def _password_changed(self, user: User) -> None:
        """The notice of a new password (changed, or set with a reset link) to the verified primary address."""
        if self.notifier is not None:
            self.notifier.send_later([self.notifier.password_changed(to=notice_address(user.emails),
                                                                     username=user.username)],
                                     purpose="password_changed", user_id=user.id)

    async def request_password_reset(self, login: str, origin: Origin | None = None) -> None:
        await self.resets.request_password_reset(login, origin)

    async def reset_password(self, token: str, new_password: str, origin: Origin | None = None) -> ResetResult:
        result = await self.resets.reset_password(token, new_password, origin)
        self._password_changed(result.user)
        return result

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
        """A new account; `password=None` makes one that can only log in after a reset.
        Sends no mail (`register` does)."""
        check_username(username)
        email = check_email(email)
        name = check_name(name)
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
                                    reason="account_taken") from None
            await self.events.emit(s, "account:create", actor=actor if actor.kind != "anonymous" else as_actor(user),
                                   user=who(user), origin=origin,
                                   details={"email": email, "email_verified": email_verified, "is_admin": is_admin})
        return user

    async def _ensure_free(self, s: AsyncSession, username: str, email: str) -> None:
        taken = await s.scalar(select(User.id).where(User.username_canonical == canonical_username(username)))
        if taken:
            raise AlreadyExists("This username is already in use. Choose another.", reason="username_taken")
        await self._ensure_email_free(s, email)

    async def _ensure_email_free(self, s: AsyncSession, email: str) -> None:
        taken = await s.scalar(select(Email.id).where(Email.address_canonical == canonical_email(email)))
        if taken:
            raise AlreadyExists("This email address is already in use by an account.", reason="email_taken")

    async def register(self, username: str, email: str, password: str, *, name: str = "",
                       origin: Origin | None = None) -> User:
        """Self-service sign-up: the account, then the verification mail to its address."""
        if not password:
            raise InvalidArgument("Enter a password.", reason="password_missing")
        user = await self.create_user(username, email, password, name=name, origin=origin)
        await self._send_verification(user, user.emails[0], enforce_limit=False)
        return user

    async def get_by_username(self, username: str) -> User | None:
        async with self.db() as s:
            return await user_by_username(s, username)

    async def get_user(self, username: str) -> User:
        """The account (with its emails) or NotFound."""
        async with self.db() as s:
            return await require_user(s, username)

    async def get_account(self, session_token: str) -> tuple[User, list[Email], tuple[str, ...]]:
        """The signed-in user, their addresses (primary first) and their second-factor methods."""
        auth = await self.authenticate_session(session_token)
        async with self.db() as s:
            methods = tuple(await self.second_factor.methods(s, auth.user))
        return auth.user, sorted_emails(auth.user), methods

    # -- email addresses ---------------------------------------------------------------------

    async def _send_verification(self, user: User, email: Email, *, enforce_limit: bool) -> bool:
        """Issue a verification token for `email` (counted by the per-user email limit) and mail
        it. The token is committed before sending; a failed send is logged and returns False."""
        lifetime = self.config.email_token_lifetime
        async with self.db() as s, s.begin():
            if enforce_limit:
                await self.limiter.check(s, self.config.email_user, user.id)
            await self.limiter.hit(s, self.config.email_user, user.id)
            token = await self.tokens.issue(s, Purpose.VERIFY_EMAIL, user_id=user.id, email_id=email.id,
                                            lifetime=lifetime)
        message = messages.verification(public_url=self.config.public_url, to=email.address,
                                        username=user.username, token=token, lifetime=lifetime)
        return await self.mail.deliver(message, purpose="verify_email", user_id=user.id)

    async def verify_email(self, token: str, origin: Origin | None = None) -> tuple[User, str]:
        """Mark the address of a verification link verified; returns the user and the address."""
        async with self.db() as s, s.begin():
            row = await self.tokens.consume(s, Purpose.VERIFY_EMAIL, token)
            email = await s.get(Email, row.email_id) if row.email_id else None
            user = await s.get(User, row.user_id)
            if email is None or user is None:
                raise InvalidArgument("The verification link is not valid. Request a new one.",
                                      reason="token_invalid")
            if not user.is_active:
                raise AccountDisabled()
            if not email.verified:
                email.verified = True
                email.verified_at = self.clock.now()
                await self.tokens.void(s, Purpose.VERIFY_EMAIL, email_id=email.id)
                await self.events.emit(s, "account:email:verified", actor=as_actor(user), user=who(user),
                                       origin=origin, details={"email": email.address, "primary": email.primary})
            address = email.address
        return user, address

    async def resend_verification(self, session_token: str, address: str = "", origin: Origin | None = None) -> None:
        """Mail a new verification link for one of the user's unverified addresses (primary when
        none is named). Limited per user; UNAVAILABLE when the mail could not be sent."""
        auth = await self.authenticate_session(session_token)
        emails = sorted_emails(auth.user)
        if address:
            wanted = canonical_email(check_email(address))
            email = next((e for e in emails if e.address_canonical == wanted), None)
            if email is None:
                raise _not_your_address()
        else:
            email = next((e for e in emails if e.primary), None)
            if email is None:
                raise FailedPrecondition("Your account has no primary email address.", reason="no_primary_email")
        if email.verified:
            raise FailedPrecondition(f"{email.address} is already verified.", reason="email_already_verified")
        if not await self._send_verification(auth.user, email, enforce_limit=True):
            raise Unavailable("The verification email could not be sent just now. Try again later.",
                              reason="mail_failed")

    async def add_email(self, session_token: str, address: str, origin: Origin | None = None) -> list[Email]:
        """Add an unverified, non-primary address and mail its verification link."""
        auth = await self.authenticate_session(session_token)
        address = check_email(address)
        user = auth.user
        now = self.clock.now()
        async with self.db() as s, s.begin():
            await self.limiter.check(s, self.config.email_user, user.id)
            await self._ensure_email_free(s, address)
            email = Email(user_id=user.id, address=address, address_canonical=canonical_email(address),
                          verified=False, primary=False, created_at=now)
            s.add(email)
            try:
                await s.flush()
            except IntegrityError:
                raise AlreadyExists("This email address is already in use by an account.",
                                    reason="email_taken") from None
            await self.events.emit(s, "account:email:add", actor=as_actor(user), user=who(user), origin=origin,
                                   details={"email": address})
        await self._send_verification(user, email, enforce_limit=False)
        if self.notifier is not None:  # to the address that was already there, not the one added
            self.notifier.send_later([self.notifier.email_added(to=notice_address(user.emails), username=user.username,
                                                                added=address)],
                                     purpose="email_added", user_id=user.id)
        return await self._emails_of(user.id)

    async def _emails_of(self, user_id: str) -> list[Email]:
        """The account's addresses as they are now, primary first."""
        async with self.db() as s:
            return sorted_emails(await s.get(User, user_id))

    async def set_primary_email(self, session_token: str, address: str, origin: Origin | None = None) -> list[Email]:
        """Make another verified address of the account its primary one (where notices and password
        resets go), as PyPI: a recent password entry, the change and its event in one transaction, then
        a notice to the OLD primary address (the new one is the owner's own verified choice: not mailed)."""
        auth = await self.authenticate_session(session_token)
        if await self.reauth_required(auth):
            raise PermissionDenied("Confirm your password to make this change.", reason="reauth_required")
        wanted = canonical_email(check_email(address))
        user = auth.user
        async with self.db() as s, s.begin():
            # One change of an account's primary address at a time, and what is read below is current:
            # the user's row is locked (PostgreSQL) and the first statement writes (SQLite's write lock).
            await s.execute(select(User.id).where(User.id == user.id).with_for_update())
            demoted = (await s.execute(update(Email).where(
                Email.user_id == user.id, Email.primary.is_(True), Email.address_canonical != wanted,
            ).values(primary=False).returning(Email.address, Email.verified))).all()
            email = await s.scalar(select(Email).where(Email.user_id == user.id, Email.address_canonical == wanted))
            # a refusal below rolls the demotion back
            if email is None:
                raise _not_your_address()
            if not email.verified:
                raise FailedPrecondition(f"Verify {email.address} before making it your primary address.",
                                         reason="email_unverified")
            if email.primary:
                raise FailedPrecondition(f"{email.address} is already your primary address.",
                                         reason="email_already_primary")
            email.primary = True
            old_address, old_verified = demoted[0] if demoted else ("", False)
            await self.events.emit(s, "account:email:primary:change", actor=as_actor(user), user=who(user),
                                   origin=origin, details={"old_email": old_address, "new_email": email.address})
        if self.notifier is not None:
            self.notifier.send_later([self.notifier.primary_email_changed(
                to=old_address if old_verified else "", username=user.username, new=email.address)],
                purpose="primary_email_changed", user_id=user.id)
        return await self._emails_of(user.id)

    # -- operator actions (AdminService) -----------------------------------------------------

    async def set_active(self, username: str, active: bool, *, reason: str = "", actor: ActorRef) -> User:
        """Disable (ending every session) or re-enable an account; an event when it changes."""
        reason = (reason or "").strip()
        if len(reason) > MAX_DISABLED_REASON or not reason.isprintable():
            raise InvalidArgument(f"The reason must be one line of at most {MAX_DISABLED_REASON} characters.",
                                  reason="reason_invalid")
        async with self.db() as s, s.begin():
            user = await require_user(s, username)
            if user.is_active == active:
                return user
            user.is_active = active
            user.disabled_reason = "" if active else reason
            details: dict[str, object] = {"reason": reason} if reason else {}
            if not active:
                details["sessions_ended"] = await self.sessions.revoke_all(s, user.id)
            await self.events.emit(s, "account:enable" if active else "account:disable", actor=actor,
                                   user=who(user), details=details)
        return user

    async def set_admin(self, username: str, is_admin: bool, *, actor: ActorRef) -> User:
        async with self.db() as s, s.begin():
            user = await require_user(s, username)
            if user.is_admin == is_admin:
                return user
            user.is_admin = is_admin
            await self.events.emit(s, "account:admin:grant" if is_admin else "account:admin:revoke",
                                   actor=actor, user=who(user))
        return user
