"""Managing second factors: authenticator app setup and removal, security keys, recovery codes,
and the status and policy questions other parts ask (the domain layer; no protobuf here).

Every change runs in one transaction with its audit event, holding the user's row locked so that
"is this the first factor?" and "is this the last one?" are answered consistently; the notice
mail goes out after the commit.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authsvc.accounts.models import User
from authsvc.accounts.service import AccountsService
from authsvc.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from authsvc.mail import DroppingMailer, Mailer, Message
from authsvc.ratelimit import RateLimiter
from authsvc.twofactor import notices, recovery, totp, webauthn
from authsvc.twofactor.core import (
    Notices,
    TwoFactorConfig,
    as_actor,
    confirm_identity,
    primary_address,
    require_verified_email,
    user_handle,
    who,
)
from authsvc.twofactor.login import LoginDone, Proof, Refused, SecondFactorLogin, decrypt_seed, totp_refusal
from authsvc.twofactor.models import TotpCredential, WebAuthnCredential
from authsvc.twofactor.passkeys import PASSKEY, PasskeyLogin, PasskeyLoginDone
from authsvc.twofactor.pending import PendingLogins, active_methods, has_second_factor, users_with_second_factor
from authsvc.twofactor.policy import SITE, TwoFactorPolicy
from gatehouse.infra.clock import Clock, as_utc
from gatehouse.infra.outbox import EventEmitter, Origin
from gatehouse.infra.transactions import Transactions



@dataclasses.dataclass(frozen=True)
class KeyView:
    id: str
    label: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    passkey: bool = False

    @classmethod
    def of(cls, row: WebAuthnCredential) -> "KeyView":
        return cls(id=row.id, label=row.label, created_at=as_utc(row.created_at), last_used_at=as_utc(row.last_used_at),
                   passkey=bool(row.discoverable))


@dataclasses.dataclass(frozen=True)
class Status:
    methods: tuple[str, ...]
    totp_created_at: dt.datetime | None
    totp_last_used_at: dt.datetime | None
    keys: list[KeyView]
    recovery_codes_remaining: int
    required_by: list[str]

    @property
    def enabled(self) -> bool:
        return bool(self.methods)


@dataclasses.dataclass(frozen=True)
class TotpSetup:
    provisioning_uri: str
    secret: str
    qr_code_svg: str
    expires_at: dt.datetime


async def _lock_user(s: AsyncSession, user_id: str) -> User:
    """The user's row, locked for the transaction (PostgreSQL; SQLite serialises writers anyway)."""
    return await s.scalar(select(User).where(User.id == user_id).with_for_update())


class TwoFactorService:
    """The two-factor façade the gRPC adapter calls: managing factors here, the login's second
    step in its part (`SecondFactorLogin`), notices and first recovery codes in `Notices`."""

    def __init__(self, *, db: async_sessionmaker, tx: Transactions, clock: Clock, events: EventEmitter,
                 accounts: AccountsService, seeds: totp.SeedBox, relying_party: webauthn.RelyingParty,
                 pending: PendingLogins, policy: TwoFactorPolicy, limiter: RateLimiter | None = None,
                 mailer: Mailer | None = None, config: TwoFactorConfig | None = None):
        self.db = db
        self.clock = clock
        self.events = events
        self.accounts = accounts
        self.seeds = seeds
        self.rp = relying_party
        self.pending = pending
        self.policy = policy
        self.config = config or TwoFactorConfig()
        self.notices = Notices(clock=clock, events=events, mailer=mailer or DroppingMailer(), config=self.config)
        self.logins = SecondFactorLogin(tx=tx, clock=clock, events=events, accounts=accounts, seeds=seeds,
                                        relying_party=relying_party, pending=pending,
                                        limiter=limiter or RateLimiter(clock), config=self.config,
                                        notices=self.notices)
        self.passkeys = PasskeyLogin(tx=tx, clock=clock, events=events, accounts=accounts,
                                     relying_party=relying_party, limiter=self.logins.limiter, config=self.config)

    async def close(self, timeout: float = 5.0) -> None:
        await self.notices.close(timeout)

    # -- the login's second step -----------------------------------------------------------

    async def begin_webauthn_login(self, pending_token: str, origin: Origin | None = None) -> str:
        return await self.logins.begin_webauthn_login(pending_token, origin)

    async def complete_login(self, pending_token: str, proof: Proof, origin: Origin | None = None) -> LoginDone:
        return await self.logins.complete_login(pending_token, proof, origin)

    # -- passwordless login with a passkey --------------------------------------------------

    async def begin_passkey_login(self, origin: Origin | None = None) -> str:
        return await self.passkeys.begin(origin)

    async def complete_passkey_login(self, assertion_json: str, origin: Origin | None = None) -> PasskeyLoginDone:
        return await self.passkeys.complete(assertion_json, origin)

    # -- questions other parts ask ---------------------------------------------------------

    async def has_second_factor(self, user_id: str) -> bool:
        async with self.db() as s:
            return await has_second_factor(s, user_id)

    async def users_with_second_factor(self, user_ids: Iterable[str]) -> set[str]:
        async with self.db() as s:
            return await users_with_second_factor(s, user_ids)

    async def status(self, session_token: str) -> Status:
        auth = await self.accounts.authenticate_session(session_token)
        uid = auth.user.id
        async with self.db() as s:
            app = await s.scalar(select(TotpCredential).where(TotpCredential.user_id == uid,
                                                              TotpCredential.confirmed_at.is_not(None)))
            keys = await s.scalars(select(WebAuthnCredential).where(WebAuthnCredential.user_id == uid)
                                   .order_by(WebAuthnCredential.created_at, WebAuthnCredential.label))
            return Status(methods=await active_methods(s, uid),
                          totp_created_at=as_utc(app.confirmed_at) if app else None,
                          totp_last_used_at=as_utc(app.last_used_at) if app else None,
                          keys=[KeyView.of(k) for k in keys],
                          recovery_codes_remaining=await s.run_sync(recovery.remaining, uid),
                          required_by=await self.policy.required_by(s, uid))

    # -- authenticator app -----------------------------------------------------------------

    async def begin_totp_setup(self, session_token: str, origin: Origin | None = None) -> TotpSetup:
        """A new seed (kept encrypted, inactive until a code from it is confirmed)."""
        user = (await self.accounts.authenticate_session(session_token)).user
        require_verified_email(user)
        if not self.seeds.configured:
            raise FailedPrecondition("Authenticator apps are not available on this index (no AUTHSVC_TOTP_KEYS).",
                                     reason="totp_not_configured")
        seed = totp.new_seed()
        version, sealed = self.seeds.encrypt(user.id, seed)
        now = self.clock.now()
        try:
            async with self.db() as s, s.begin():
                await _lock_user(s, user.id)
                row = await s.scalar(select(TotpCredential).where(TotpCredential.user_id == user.id))
                if row is not None and row.confirmed_at is not None:
                    raise AlreadyExists("Your account already has an authenticator app. Remove it before "
                                        "setting up another.", reason="totp_exists")
                if row is None:
                    s.add(TotpCredential(user_id=user.id, seed_ciphertext=sealed, key_version=version,
                                         last_used_step=0, created_at=now))
                else:
                    row.seed_ciphertext, row.key_version, row.created_at = sealed, version, now
                    row.last_used_step = 0
        except IntegrityError:
            raise AlreadyExists("An authenticator app setup was started at the same time. Try again.",
                                reason="totp_setup_race") from None
        uri = totp.provisioning_uri(seed, username=user.username, issuer=self.config.issuer)
        return TotpSetup(provisioning_uri=uri, secret=seed, qr_code_svg=totp.qr_svg(uri),
                         expires_at=now + self.config.totp_setup_lifetime)

    async def confirm_totp_setup(self, session_token: str, code: str, origin: Origin | None = None) -> list[str]:
        """Activate the app once a current code from it checks out; returns recovery codes when
        this is the account's first second factor (else an empty list)."""
        user = (await self.accounts.authenticate_session(session_token)).user
        code = totp.normalise_code(code)
        now = self.clock.now()
        sent: list[Message] = []
        async with self.db() as s, s.begin():
            await _lock_user(s, user.id)
            row = await s.scalar(select(TotpCredential).where(TotpCredential.user_id == user.id))
            if row is not None and row.confirmed_at is not None:
                raise AlreadyExists("Your authenticator app is already set up.", reason="totp_exists")
            if row is None:
                raise FailedPrecondition("Start the authenticator app setup first.", reason="totp_setup_missing")
            if as_utc(row.created_at) + self.config.totp_setup_lifetime <= now:
                raise FailedPrecondition("The authenticator app setup expired. Start it again.",
                                         reason="totp_setup_expired")
            try:
                seed = decrypt_seed(self.seeds, row)
            except Refused as exc:
                raise FailedPrecondition(exc.message, reason=exc.reason) from None
            match = totp.match_code(seed, code, totp.step_at(now.timestamp()))
            if match.verdict is not totp.Verdict.ACCEPTED:
                raise InvalidArgument(totp_refusal(match.verdict)[1], reason="totp_" + match.verdict.value)
            first = not await has_second_factor(s, user.id)
            row.confirmed_at = now
            row.last_used_step = max(match.steps)  # the confirming code cannot log in later
            await self.events.emit(s, "account:two_factor:method_added", actor=as_actor(user), user=who(user),
                                   origin=origin, details={"method": "totp"})
            sent.append(notices.method_added(to=primary_address(user), username=user.username, method="totp",
                                             label="", public_url=self.config.public_url))
            codes = await self.notices.issue_first_codes(s, user, origin, sent) if first else []
        self.notices.send_later(sent, user_id=user.id)
        return codes

    async def remove_totp(self, session_token: str, password: str = "", origin: Origin | None = None) -> bool:
        """Needs the password or a fresh login. Returns whether a second factor remains."""
        user = (await confirm_identity(self.accounts, session_token, password, origin)).user
        sent: list[Message] = []
        async with self.db() as s, s.begin():
            await _lock_user(s, user.id)
            row = await s.scalar(select(TotpCredential).where(TotpCredential.user_id == user.id))
            if row is None or row.confirmed_at is None:
                raise NotFound("Your account has no authenticator app.", reason="totp_not_found")
            await s.execute(delete(TotpCredential).where(TotpCredential.id == row.id))
            remains = await self._after_removal(s, user, "totp", "", origin, sent)
        self.notices.send_later(sent, user_id=user.id)
        return remains

    # -- security keys ---------------------------------------------------------------------

    async def begin_webauthn_registration(self, session_token: str, origin: Origin | None = None, *,
                                          passkey: bool = False) -> str:
        """PublicKeyCredentialCreationOptionsJSON for the browser (a fresh, stored challenge); for a
        passkey, a resident key with user verification required."""
        user = (await self.accounts.authenticate_session(session_token)).user
        require_verified_email(user)
        now = self.clock.now()
        async with self.db() as s, s.begin():
            existing = list(await s.scalars(select(WebAuthnCredential.credential_id)
                                            .where(WebAuthnCredential.user_id == user.id)))
            if len(existing) >= self.config.max_keys:
                raise FailedPrecondition(f"An account can have at most {self.config.max_keys} security keys.",
                                         reason="too_many_keys")
            options, challenge = self.rp.registration_options(
                user_handle=user_handle(user.id), username=user.username, display_name=user.name,
                exclude=existing, passkey=passkey)
            await s.run_sync(webauthn.store_challenge, challenge, user_id=user.id, ceremony=_ceremony(passkey),
                             pending_login_id=None, now=now,
                             user_verification=self.rp.registration_verification(passkey).value,
                             lifetime=self.config.challenge_lifetime)
        return options

    async def complete_webauthn_registration(self, session_token: str, label: str, credential_json: str,
                                             origin: Origin | None = None, *,
                                             passkey: bool = False) -> tuple[KeyView, list[str]]:
        """Verify the browser's registration response and keep the key (plus recovery codes when
        it is the first second factor). A passkey answers a challenge issued for a passkey."""
        user = (await self.accounts.authenticate_session(session_token)).user
        label = webauthn.check_label(label)
        require_verified_email(user)
        response, transports = webauthn.parse_registration(credential_json)
        now = self.clock.now()
        refused = None
        async with self.db() as s, s.begin():  # the challenge is used up even if the response fails
            try:
                uv = await s.run_sync(
                    webauthn.consume_challenge, response.response.client_data.challenge, user_id=user.id,
                    ceremony=_ceremony(passkey), pending_login_id=None, now=now)
            except webauthn.WebAuthnRefused as exc:
                refused = exc
        try:
            if refused:
                raise refused
            key = self.rp.verify_registration(response, challenge=response.response.client_data.challenge,
                                              user_verification=uv, transports=transports)
        except webauthn.WebAuthnRefused as exc:
            raise InvalidArgument(exc.message, reason=exc.reason) from None
        sent: list[Message] = []
        try:
            async with self.db() as s, s.begin():
                await _lock_user(s, user.id)
                await self._check_label_free(s, user.id, label)
                if await s.scalar(select(WebAuthnCredential.id)
                                  .where(WebAuthnCredential.credential_id == key.credential_id)):
                    raise AlreadyExists("This security key is already registered.", reason="key_registered")
                first = not await has_second_factor(s, user.id)
                row = WebAuthnCredential(user_id=user.id, credential_id=key.credential_id,
                                         credential_data=key.credential_data, sign_count=key.sign_count,
                                         label=label, transports=key.transports, discoverable=passkey,
                                         created_at=now)
                s.add(row)
                await s.flush()
                method = _method(row)
                await self.events.emit(s, "account:two_factor:method_added", actor=as_actor(user), user=who(user),
                                       origin=origin, details={"method": method, "label": label})
                sent.append(notices.method_added(to=primary_address(user), username=user.username,
                                                 method=method, label=label, public_url=self.config.public_url))
                codes = await self.notices.issue_first_codes(s, user, origin, sent) if first else []
        except IntegrityError:
            raise AlreadyExists("This security key, or a key with this name, is already registered.",
                                reason="key_registered") from None
        self.notices.send_later(sent, user_id=user.id)
        return KeyView.of(row), codes

    async def rename_webauthn_key(self, session_token: str, key_id: str, label: str,
                                  origin: Origin | None = None) -> KeyView:
        user = (await self.accounts.authenticate_session(session_token)).user
        key_id, label = webauthn.check_key_id(key_id), webauthn.check_label(label)
        sent: list[Message] = []
        try:
            async with self.db() as s, s.begin():
                row = await self._own_key(s, user.id, key_id)
                if row.label != label:
                    await self._check_label_free(s, user.id, label)
                    previous, row.label = row.label, label
                    await s.flush()
                    await self.events.emit(s, "account:two_factor:method_renamed", actor=as_actor(user),
                                           user=who(user), origin=origin,
                                           details={"method": "webauthn", "label": label, "previous_label": previous})
                    sent.append(notices.key_renamed(to=primary_address(user), username=user.username,
                                                    previous=previous, label=label, public_url=self.config.public_url))
        except IntegrityError:
            raise AlreadyExists(f"You already have a security key named {label!r}.", reason="label_taken") from None
        self.notices.send_later(sent, user_id=user.id)
        return KeyView.of(row)

    async def remove_webauthn_key(self, session_token: str, key_id: str, password: str = "",
                                  origin: Origin | None = None) -> bool:
        """Needs the password or a fresh login. Returns whether a second factor remains."""
        key_id = webauthn.check_key_id(key_id)
        user = (await confirm_identity(self.accounts, session_token, password, origin)).user
        sent: list[Message] = []
        async with self.db() as s, s.begin():
            await _lock_user(s, user.id)
            row = await self._own_key(s, user.id, key_id)
            await s.execute(delete(WebAuthnCredential).where(WebAuthnCredential.id == row.id))
            remains = await self._after_removal(s, user, _method(row), row.label, origin, sent)
        self.notices.send_later(sent, user_id=user.id)
        return remains

    async def _own_key(self, s: AsyncSession, user_id: str, key_id: str) -> WebAuthnCredential:
        row = await s.scalar(select(WebAuthnCredential).where(WebAuthnCredential.id == key_id,
                                                              WebAuthnCredential.user_id == user_id))
        if row is None:
            raise NotFound("You have no security key with that id.", reason="key_not_found")
        return row

    async def _check_label_free(self, s: AsyncSession, user_id: str, label: str) -> None:
        if await s.scalar(select(WebAuthnCredential.id).where(WebAuthnCredential.user_id == user_id,
                                                              WebAuthnCredential.label == label)):
            raise AlreadyExists(f"You already have a security key named {label!r}.", reason="label_taken")

    # -- recovery codes --------------------------------------------------------------------

    async def regenerate_recovery_codes(self, session_token: str, password: str = "",
                                        origin: Origin | None = None) -> list[str]:
        """A new set of codes; every earlier one stops working. Needs the password or a fresh login."""
        user = (await confirm_identity(self.accounts, session_token, password, origin)).user
        async with self.db() as s, s.begin():
            await _lock_user(s, user.id)
            if not await has_second_factor(s, user.id):
                raise FailedPrecondition("Add an authenticator app or a security key first: recovery codes "
                                         "stand in for a second factor.", reason="no_second_factor")
            codes = await recovery.replace_codes(s, user.id, self.clock.now())
            await self.events.emit(s, "account:recovery_codes:regenerated", actor=as_actor(user), user=who(user),
                                   origin=origin, details={"count": len(codes)})
        self.notices.send_later([self.notices.codes_issued(user, regenerated=True)], user_id=user.id)
        return codes

    # -- shared ----------------------------------------------------------------------------

    async def _after_removal(self, s: AsyncSession, user: User, method: str, label: str,
                             origin: Origin | None, sent: list[Message]) -> bool:
        """After deleting a method in this transaction: refuse (roll back) when it was the last one
        and a policy requires one; drop the recovery codes with the last one; record it."""
        await s.flush()
        remains = await has_second_factor(s, user.id)
        if not remains:
            required = await self.policy.required_by(s, user.id)
            if required:
                raise FailedPrecondition(
                    "This is your last second factor and " + _why(required) + ". Add another method before "
                    "removing this one.", reason="two_factor_required")
            await recovery.remove_codes(s, user.id)
        details = {"method": method, **({"label": label} if label else {})}
        await self.events.emit(s, "account:two_factor:method_removed", actor=as_actor(user), user=who(user),
                               origin=origin, details=details)
        sent.append(notices.method_removed(to=primary_address(user), username=user.username, method=method,
                                           label=label, remaining=int(remains), public_url=self.config.public_url))
        return remains


def _ceremony(passkey: bool) -> str:
    return webauthn.REGISTER_PASSKEY if passkey else webauthn.REGISTER


def _method(row: WebAuthnCredential) -> str:
    """The method a key's events and notices name: "passkey" or "webauthn" (a security key)."""
    return PASSKEY if row.discoverable else "webauthn"


def _why(required: list[str]) -> str:
    projects = [name for name in required if name != SITE]
    parts = []
    if SITE in required:
        parts.append("this index requires two-factor authentication for uploads")
    if projects:
        named = ", ".join(repr(p) for p in projects[:5]) + (" and others" if len(projects) > 5 else "")
        parts.append(f"the project{'s' if len(projects) > 1 else ''} {named} require{'' if len(projects) > 1 else 's'} "
                     "it of collaborators")
    return " and ".join(parts)
