"""Passwordless login with a passkey: a discoverable WebAuthn credential that verified its user
(PIN or biometrics) signs that user in without a password.

`begin` hands out request options with no allowCredentials and user verification required; the
challenge is stored (its SHA-256) with no user, single use and short-lived. `complete` finds the
credential by its id, checks that the user handle names its owner, and in one transaction: takes a
slot from the password login's limits (the client IP's, then the account's), uses up the challenge
(DELETE … RETURNING, so of parallel answers to one challenge exactly one goes on), verifies the
assertion with user verification required, moves the signature counter by a conditional UPDATE,
and starts the session (its `auth_method` is "passkey"). A refusal commits its slot and its
`account:login:failure` event, then raises.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import cast

from sqlalchemy import Table, bindparam, delete, insert, select
from sqlalchemy.orm import Session as OrmSession

from authsvc.accounts.core import ip_subject
from authsvc.db import new_id
from authsvc.accounts.models import Session, User
from authsvc.accounts.service import AccountsService
from authsvc.errors import Unauthenticated
from authsvc.ratelimit import Limit, RateLimiter
from authsvc.twofactor import webauthn
from authsvc.twofactor.core import TwoFactorConfig, user_handle, who
from authsvc.twofactor.login import KEY_USED
from authsvc.twofactor.models import PasskeyChallenge, WebAuthnCredential
from gatehouse.infra.clock import Clock, as_utc
from gatehouse.infra.outbox import ANONYMOUS, EventEmitter, Origin
from gatehouse.infra.transactions import Transactions

log = logging.getLogger("authsvc.twofactor")

PASSKEY = "passkey"
REQUIRED = "required"

_CHALLENGES = cast(Table, PasskeyChallenge.__table__)
_DROP_EXPIRED = delete(_CHALLENGES).where(_CHALLENGES.c.expires_at <= bindparam("now"))
_INSERT = insert(_CHALLENGES)
_CONSUME = (delete(_CHALLENGES).where(_CHALLENGES.c.challenge_hash == bindparam("hash"))
            .returning(_CHALLENGES.c.expires_at))


@dataclasses.dataclass(frozen=True)
class PasskeyLoginDone:
    user: User
    session_token: str
    session: Session


class PasskeyLogin:
    """Passwordless login with a discoverable credential (a part of the two-factor service)."""

    def __init__(self, *, tx: Transactions, clock: Clock, events: EventEmitter, accounts: AccountsService,
                 relying_party: webauthn.RelyingParty, limiter: RateLimiter, config: TwoFactorConfig):
        self.tx = tx
        self.clock = clock
        self.events = events
        self.accounts = accounts
        self.rp = relying_party
        self.limiter = limiter
        self.config = config

    # -- begin -------------------------------------------------------------------------------

    async def begin(self, origin: Origin | None = None) -> str:
        """PublicKeyCredentialRequestOptionsJSON for a passkey login (no account named yet)."""
        return await self.tx.run(lambda s: self._begin(s, origin or Origin()))

    def _begin(self, s: OrmSession, origin: Origin) -> str:
        taken = self.limiter.acquire_sync(s, [(self.config.passkey_begin_ip, ip_subject(origin))])
        if taken.refused is not None:
            raise taken.refused
        now = self.clock.now()
        options, challenge = self.rp.passkey_options()
        conn = s.connection()
        conn.execute(_DROP_EXPIRED, {"now": now})
        conn.execute(_INSERT, {"id": new_id(), "challenge_hash": webauthn.challenge_digest(challenge),
                               "created_at": now, "expires_at": now + self.config.challenge_lifetime})
        return options

    # -- complete ----------------------------------------------------------------------------

    async def complete(self, assertion_json: str, origin: Origin | None = None) -> PasskeyLoginDone:
        origin = origin or Origin()
        response = webauthn.parse_assertion(assertion_json)  # malformed: INVALID_ARGUMENT, not counted
        outcome = await self.tx.run(lambda s: self._complete(s, response, origin))
        if isinstance(outcome, Exception):  # refused: the slot taken and the event are committed
            raise outcome
        return outcome

    def _limits(self, user_id: str | None, origin: Origin) -> list[tuple[Limit, str]]:
        """The password login's limits: the client IP's, then (when the credential names one) the
        account's per window and per day."""
        login = self.accounts.config
        limits = [(login.login_ip, ip_subject(origin))]
        if user_id is not None:
            limits += [(login.login_user, user_id), (login.login_day, user_id)]
        return limits

    def _complete(self, s: OrmSession, response, origin: Origin) -> PasskeyLoginDone | Exception:
        key = s.scalar(select(WebAuthnCredential).where(
            WebAuthnCredential.credential_id == bytes(response.raw_id)))
        user = s.get(User, key.user_id) if key is not None else None
        taken = self.limiter.acquire_sync(s, self._limits(user.id if user else None, origin))
        if taken.refused is not None:
            self._record_failure(s, user, "rate_limited", origin)
            return taken.refused
        try:
            self._check(s, response, key, user)
        except webauthn.WebAuthnRefused as exc:  # the slots taken stay: they count this failure
            self._record_failure(s, user, exc.reason, origin)
            return Unauthenticated(exc.message, reason=exc.reason)
        assert user is not None and key is not None
        self.limiter.release_sync(s, taken.slots)
        # A passkey login is never held for new-device confirmation: nothing to mail.
        done = self.accounts.finish_login_sync(s, user, origin, method=PASSKEY, device_token="", sent=[])
        assert done.session_token is not None and done.session is not None
        return PasskeyLoginDone(user=user, session_token=done.session_token, session=done.session)

    def _check(self, s: OrmSession, response, key: WebAuthnCredential | None, user: User | None) -> None:
        """Use up the challenge, then check the assertion against the passkey; raises WebAuthnRefused."""
        challenge = response.response.client_data.challenge
        found = s.connection().execute(_CONSUME, {"hash": webauthn.challenge_digest(challenge)}).first()
        if found is None:
            raise webauthn.WebAuthnRefused("webauthn_challenge", "The passkey answered a challenge this site did "
                                           "not issue, or one already used. Start again.")
        if as_utc(found.expires_at) <= self.clock.now():
            raise webauthn.WebAuthnRefused("webauthn_challenge_expired", "The passkey request expired. Start again.")
        if key is None or user is None or not key.discoverable:
            raise webauthn.WebAuthnRefused("passkey_unknown", "This passkey is not registered here. Sign in "
                                           "with your password, then add a passkey on the two-factor page.")
        if not user.is_active:
            raise webauthn.WebAuthnRefused("account_disabled", "This account is disabled.")
        handle = response.response.user_handle
        if not handle:
            raise webauthn.WebAuthnRefused("passkey_no_user_handle", "The passkey did not say which account it "
                                           "belongs to. Use another passkey or sign in with your password.")
        counter = self.rp.verify_assertion(response, challenge=challenge, user_verification=REQUIRED,
                                           credential_data=key.credential_data, user_handle=user_handle(user.id))
        webauthn.check_sign_count(key.sign_count, counter)
        result = s.connection().execute(KEY_USED, {"kid": key.id, "stored": key.sign_count, "counter": counter,
                                                   "now": self.clock.now()})
        if result.rowcount != 1:
            raise webauthn.WebAuthnRefused("webauthn_sign_count", "This passkey was used twice at once. Try again.")

    def _record_failure(self, s: OrmSession, user: User | None, reason: str, origin: Origin) -> None:
        self.events.emit_sync(s, "account:login:failure", actor=ANONYMOUS, user=who(user) if user else None,
                              origin=origin, details={"reason": reason, "method": PASSKEY})
        log.info("passkey login refused", extra={"user_id": user.id if user else "", "reason": reason})
