"""The second step of a login: a pending login plus a TOTP code, a security-key assertion or a
recovery code gives a session.

Every attempt takes a slot from one limiter shared by every method, per user and per client IP,
in the same transaction and before the proof is looked at (an atomic upsert that tests and
counts, so parallel attempts cannot share the last slot); a right proof gives the slots back. While
either is used up even a correct proof is refused (RESOURCE_EXHAUSTED with when to retry). Each proof is used up atomically in the transaction that starts the session: a TOTP step
by a conditional UPDATE on the last accepted step, a recovery code by a conditional UPDATE on
`used_at`, a WebAuthn challenge by deleting it, the pending login by a conditional UPDATE; so two
parallel submissions of one proof succeed exactly once.
"""

from __future__ import annotations

import dataclasses
import logging

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session as OrmSession

from authsvc.accounts.models import Session, User
from authsvc.accounts.service import AccountsService
from authsvc.errors import FailedPrecondition, Unauthenticated
from authsvc.mail import Message
from authsvc.ratelimit import RateLimiter
from authsvc.twofactor import notices, recovery, totp, webauthn
from authsvc.twofactor.core import Notices, TwoFactorConfig, as_actor, primary_address, user_handle, who
from authsvc.twofactor.models import TotpCredential, WebAuthnCredential
from authsvc.twofactor.pending import RECOVERY_CODE, TOTP, WEBAUTHN, Pending, PendingLogins
from gatehouse.infra.clock import Clock
from gatehouse.infra.outbox import ANONYMOUS, EventEmitter, Origin
from gatehouse.infra.transactions import Transactions

log = logging.getLogger("authsvc.twofactor")
# Hot-path updates run as Core statements on the session's connection (no ORM bookkeeping).
_TOTP = TotpCredential.__table__
_KEYS = WebAuthnCredential.__table__
# Prebuilt: a step is recorded only if it is newer than the last one (replay protection).
_TOTP_USED = update(_TOTP).where(_TOTP.c.id == bindparam("cid"), _TOTP.c.last_used_step < bindparam("step"))
# A security key's or passkey's use: recorded only over the counter stored (a cloned key's replay
# loses the race); passkeys.py uses it too.
KEY_USED = (update(_KEYS).where(_KEYS.c.id == bindparam("kid"), _KEYS.c.sign_count == bindparam("stored"))
            .values(sign_count=bindparam("counter"), last_used_at=bindparam("now")))


@dataclasses.dataclass(frozen=True)
class Proof:
    """What the user offers for the second step: `method` is "totp", "webauthn" or "recovery_code"."""

    method: str
    value: str
    device_token: str = ""  # the browser's device token: a new browser and network hold the login


@dataclasses.dataclass(frozen=True)
class LoginDone:
    user: User
    session_token: str | None
    session: Session | None
    method: str
    recovery_codes_remaining: int
    held_browser_token: str = ""  # instead of a session: held for new-device confirmation


class Refused(Exception):
    """A second-factor attempt that failed (and counts against the limiter)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def _ip(origin: Origin) -> str:
    return (origin.ip_address or "unknown")[:64]


def decrypt_seed(seeds: totp.SeedBox, row: TotpCredential) -> str:
    """The app's seed, or Refused (logged) when no key at hand opens it."""
    try:
        return seeds.decrypt(row.user_id, row.key_version, row.seed_ciphertext)
    except totp.SeedDecryptError as exc:
        log.error("TOTP seed unreadable", extra={"user_id": row.user_id, "key_version": row.key_version,
                                                 "error": str(exc)})
        raise Refused("totp_unavailable", "Your authenticator app cannot be checked at the moment. Use a "
                      "security key or a recovery code.") from None


def totp_refusal(verdict: totp.Verdict) -> tuple[str, str]:
    """The reason and message for a code that was not accepted."""
    if verdict is totp.Verdict.OUT_OF_SYNC:
        return "totp_out_of_sync", ("This code is from a time too far from now: your device's clock seems "
                                    "out of sync. Set it to update automatically, then enter the newest code.")
    return "totp_invalid", "The authenticator app code is incorrect."


class SecondFactorLogin:
    """The second step of a login (a part of the two-factor service)."""

    # Both steps run as one synchronous function in one transaction (`Transactions.run`): on
    # SQLite that is a single hand-off to a worker thread instead of several per statement.

    def __init__(self, *, tx: Transactions, clock: Clock, events: EventEmitter, accounts: AccountsService,
                 seeds: totp.SeedBox, relying_party: webauthn.RelyingParty, pending: PendingLogins,
                 limiter: RateLimiter, config: TwoFactorConfig, notices: Notices):
        self.tx = tx
        self.clock = clock
        self.events = events
        self.accounts = accounts
        self.seeds = seeds
        self.rp = relying_party
        self.pending = pending
        self.limiter = limiter
        self.config = config
        self.notices = notices

    async def begin_webauthn_login(self, pending_token: str, origin: Origin | None = None) -> str:
        """PublicKeyCredentialRequestOptionsJSON for the pending login's user and their keys."""
        return await self.tx.run(lambda s: self._begin_webauthn_login(s, pending_token))

    def _begin_webauthn_login(self, s: OrmSession, pending_token: str) -> str:
        now = self.clock.now()
        pending = self.pending.resolve_sync(s, pending_token)
        keys = list(s.scalars(select(_KEYS.c.credential_id).where(_KEYS.c.user_id == pending.user.id)))
        if not keys:
            raise FailedPrecondition("This account has no security key. Use another method.",
                                     reason="no_security_key")
        options, challenge = self.rp.authentication_options(keys)
        webauthn.store_challenge(s, challenge, user_id=pending.user.id, ceremony=webauthn.AUTHENTICATE,
                                 pending_login_id=pending.id, now=now,
                                 user_verification=self.rp.user_verification.value,
                                 lifetime=self.config.challenge_lifetime)
        return options

    async def complete_login(self, pending_token: str, proof: Proof, origin: Origin | None = None) -> LoginDone:
        origin = origin or Origin()
        value = self._parse_proof(proof)  # malformed input is INVALID_ARGUMENT and does not count
        sent: list[Message] = []
        outcome = await self.tx.run(lambda s: self._complete_login(s, pending_token, proof, value, origin, sent))
        if isinstance(outcome, Exception):  # refused: the failure and its event are committed
            raise outcome
        self.notices.send_later(sent, user_id=outcome.user.id)
        return outcome

    def _complete_login(self, s: OrmSession, pending_token: str, proof: Proof, value, origin: Origin,
                        sent: list[Message]) -> LoginDone | Exception:
        """The transaction of the second step: a LoginDone, or the refusal to raise after the
        commit (so that the failure counts and its event are kept)."""
        method = proof.method
        pending = self.pending.resolve_sync(
            s, pending_token, with_totp=method == TOTP,
            credential_id=bytes(value.raw_id) if method == WEBAUTHN else None)
        user = pending.user
        taken = self.limiter.acquire_sync(s, [(self.config.failures_user, user.id),
                                              (self.config.failures_ip, _ip(origin))])
        if taken.refused is not None:
            self._record_failure(s, user, method, "rate_limited", origin)
            return taken.refused
        try:
            remaining = self._use_proof(s, pending, method, value, origin, sent)
        except Refused as exc:  # the slots taken stay: they count this failure
            self._record_failure(s, user, method, exc.reason, origin)
            return Unauthenticated(exc.message, reason=exc.reason)
        self.pending.consume_sync(s, pending.id)
        self.limiter.reset_and_release_sync(s, *taken.slots)  # the user's failures forgotten, the IP's slot back
        done = self.accounts.finish_login_sync(s, user, origin, method=method, device_token=proof.device_token,
                                               sent=sent)
        return LoginDone(user=user, session_token=done.session_token, session=done.session, method=method,
                         recovery_codes_remaining=remaining, held_browser_token=done.held_browser_token)

    @staticmethod
    def _parse_proof(proof: Proof):
        if proof.method == TOTP:
            return totp.normalise_code(proof.value)
        if proof.method == RECOVERY_CODE:
            return recovery.normalise(proof.value)
        if proof.method == WEBAUTHN:
            return webauthn.parse_assertion(proof.value)
        from authsvc.errors import InvalidArgument

        raise InvalidArgument("Enter a code from your authenticator app, use your security key, or enter a "
                              "recovery code.", reason="second_factor_missing")

    def _record_failure(self, s: OrmSession, user: User, method: str, reason: str, origin: Origin) -> None:
        self.events.emit_sync(s, "account:login:failure", actor=ANONYMOUS, user=who(user), origin=origin,
                              details={"reason": reason, "method": method})
        log.info("two-factor login refused", extra={"user_id": user.id, "method": method, "reason": reason})

    def _use_proof(self, s: OrmSession, pending: Pending, method: str, value, origin: Origin,
                   sent: list[Message]) -> int:
        """Check and use up the proof (raises Refused); returns the recovery codes left after a
        recovery code was used, else -1."""
        user = pending.user
        if method == TOTP:
            self._use_totp(s, user, pending.totp, value)
        elif method == WEBAUTHN:
            self._use_assertion(s, pending, value)
        else:
            if not recovery.use_code(s, user.id, value, self.clock.now()):
                raise Refused("recovery_code_invalid", "This recovery code is not valid or was already used.")
            left = recovery.remaining(s, user.id)
            self.events.emit_sync(s, "account:recovery_codes:used", actor=as_actor(user), user=who(user),
                                  origin=origin, details={"remaining": left})
            sent.append(notices.recovery_code_used(to=primary_address(user), username=user.username,
                                                   remaining=left, public_url=self.config.public_url))
            return left
        return -1  # not counted: the answer leaves recovery_codes_remaining unset

    # -- TOTP --------------------------------------------------------------------------------

    def _use_totp(self, s: OrmSession, user: User, row: TotpCredential | None, code: str) -> None:
        if row is None:
            raise Refused("method_not_enabled", "This account has no authenticator app. Use another method.")
        seed = decrypt_seed(self.seeds, row)
        now = self.clock.now()
        match = totp.match_code(seed, code, totp.step_at(now.timestamp()))
        if match.verdict is not totp.Verdict.ACCEPTED:
            raise Refused(*totp_refusal(match.verdict))
        fresh = [step for step in match.steps if step > row.last_used_step]
        replayed = Refused("totp_replayed", "This code was already used. Wait for the next code from your app.")
        if not fresh:
            raise replayed
        values = {"last_used_step": fresh[0], "last_used_at": now}
        if row.key_version != self.seeds.current:  # rotate the seed onto the newest key
            values["key_version"], values["seed_ciphertext"] = self.seeds.encrypt(user.id, seed)
        result = s.connection().execute(_TOTP_USED.values(**{k: bindparam(k) for k in values}),
                                        {"cid": row.id, "step": fresh[0], **values})
        if result.rowcount != 1:
            raise replayed

    # -- WebAuthn ----------------------------------------------------------------------------

    def _use_assertion(self, s: OrmSession, pending: Pending, response) -> None:
        user = pending.user
        try:
            challenge = response.response.client_data.challenge
            uv = webauthn.consume_challenge(s, challenge, user_id=user.id, ceremony=webauthn.AUTHENTICATE,
                                            pending_login_id=pending.id, now=self.clock.now())
            row = pending.key
            if row is None:
                raise webauthn.WebAuthnRefused("webauthn_unknown_key", "This security key is not registered to "
                                               "your account.")
            counter = self.rp.verify_assertion(response, challenge=challenge, user_verification=uv,
                                               credential_data=row.credential_data, user_handle=user_handle(user.id))
            try:
                webauthn.check_sign_count(row.sign_count, counter)
            except webauthn.WebAuthnRefused:
                log.warning("security key signature counter did not increase: possible cloned key",
                            extra={"user_id": user.id, "key_id": row.id, "stored": row.sign_count,
                                   "presented": counter})
                raise
            result = s.connection().execute(KEY_USED, {"kid": row.id, "stored": row.sign_count,
                                                        "counter": counter, "now": self.clock.now()})
            if result.rowcount != 1:
                raise webauthn.WebAuthnRefused("webauthn_sign_count", "This security key was used twice at once. "
                                               "Try again.")
        except webauthn.WebAuthnRefused as exc:
            raise Refused(exc.reason, exc.message) from None
