"""The second step of a login: a pending login plus a TOTP code, a security-key assertion or a
recovery code gives a session.

Failed attempts count against one limiter shared by every method, per user and per client IP;
while either is exhausted even a correct proof is refused (RESOURCE_EXHAUSTED with when to
retry). Each proof is used up atomically in the transaction that starts the session: a TOTP step
by a conditional UPDATE on the last accepted step, a recovery code by a conditional UPDATE on
`used_at`, a WebAuthn challenge by deleting it, the pending login by a conditional UPDATE; so two
parallel submissions of one proof succeed exactly once.
"""

from __future__ import annotations

import dataclasses
import logging

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from authsvc.accounts.models import Session, User
from authsvc.errors import FailedPrecondition, RateLimited, Unauthenticated
from authsvc.mail import Message
from authsvc.ratelimit import describe_wait
from authsvc.twofactor import notices, recovery, totp, webauthn
from authsvc.twofactor.core import TwoFactorCore, as_actor, primary_address, user_handle, who
from authsvc.twofactor.models import TotpCredential, WebAuthnCredential
from authsvc.twofactor.pending import RECOVERY_CODE, TOTP, WEBAUTHN, Pending
from gatehouse.infra.outbox import ANONYMOUS, Origin

log = logging.getLogger("authsvc.twofactor")
# Hot-path updates run as Core statements on the session's connection (no ORM bookkeeping).
_USERS = User.__table__
_TOTP = TotpCredential.__table__
_KEYS = WebAuthnCredential.__table__


@dataclasses.dataclass(frozen=True)
class Proof:
    """What the user offers for the second step: `method` is "totp", "webauthn" or "recovery_code"."""

    method: str
    value: str


@dataclasses.dataclass(frozen=True)
class LoginDone:
    user: User
    session_token: str
    session: Session
    method: str
    recovery_codes_remaining: int


class Refused(Exception):
    """A second-factor attempt that failed (and counts against the limiter)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def _ip(origin: Origin) -> str:
    return (origin.ip_address or "unknown")[:64]


class LoginMixin(TwoFactorCore):
    async def begin_webauthn_login(self, pending_token: str, origin: Origin | None = None) -> str:
        """PublicKeyCredentialRequestOptionsJSON for the pending login's user and their keys."""
        now = self.clock.now()
        async with self.db() as s, s.begin():
            pending = await self.pending.resolve(s, pending_token)
            keys = list(await s.scalars(select(WebAuthnCredential.credential_id)
                                        .where(WebAuthnCredential.user_id == pending.user.id)))
            if not keys:
                raise FailedPrecondition("This account has no security key. Use another method.",
                                         reason="no_security_key")
            options, challenge = self.rp.authentication_options(keys)
            await webauthn.store_challenge(s, challenge, user_id=pending.user.id, ceremony=webauthn.AUTHENTICATE,
                                           pending_login_id=pending.id, now=now,
                                           user_verification=self.rp.user_verification.value,
                                           lifetime=self.config.challenge_lifetime)
        return options

    async def complete_login(self, pending_token: str, proof: Proof, origin: Origin | None = None) -> LoginDone:
        origin = origin or Origin()
        value = self._parse_proof(proof)  # malformed input is INVALID_ARGUMENT and does not count
        refusal: Exception | None = None
        sent: list[Message] = []
        async with self.db() as s, s.begin():
            pending = await self.pending.resolve(
                s, pending_token, with_totp=proof.method == TOTP,
                credential_id=bytes(value.raw_id) if proof.method == WEBAUTHN else None,
                limits=(self.config.failures_user, self.config.failures_ip, _ip(origin)))
            user = pending.user
            refusal = await self._check_limits(s, pending, origin)
            if refusal is not None:
                await self._record_failure(s, user, proof.method, "rate_limited", origin, count=False)
            else:
                try:
                    remaining = await self._use_proof(s, pending, proof.method, value, origin, sent)
                except Refused as exc:
                    refusal = Unauthenticated(exc.message, reason=exc.reason)
                    await self._record_failure(s, user, proof.method, exc.reason, origin)
            if refusal is None:
                await self.pending.consume(s, pending.id)
                token, row = await self.accounts.start_session(s, user, origin)
                await (await s.connection()).execute(
                    update(_USERS).where(_USERS.c.id == user.id).values(last_login_at=self.clock.now()))
                if pending.user_failures:
                    await self.limiter.clear(s, self.config.failures_user, user.id)
                await self.events.emit(s, "account:login:success", actor=as_actor(user), user=who(user),
                                       origin=origin, details={"method": proof.method})
        if refusal is not None:
            raise refusal
        self._send_later(sent, user_id=user.id)
        log.info("two-factor login succeeded", extra={"user_id": user.id, "method": proof.method,
                                                      "session_id": row.id})
        return LoginDone(user=user, session_token=token, session=row, method=proof.method,
                         recovery_codes_remaining=remaining)

    async def _check_limits(self, s: AsyncSession, pending: Pending, origin: Origin) -> RateLimited | None:
        """The refusal when the user or the client IP is limited. The counts came with the pending
        login; only at the limit is the limiter asked (for its verdict and when to retry)."""
        for limit, subject, hits in ((self.config.failures_user, pending.user.id, pending.user_failures),
                                     (self.config.failures_ip, _ip(origin), pending.ip_failures)):
            if hits < limit.limit:
                continue
            status = await self.limiter.status(s, limit, subject)
            if status.limited:
                return RateLimited(f"{limit.message} Try again in {describe_wait(status.retry_after)}.",
                                   retry_after=status.retry_after)
        return None

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

    async def _record_failure(self, s: AsyncSession, user: User, method: str, reason: str, origin: Origin,
                              *, count: bool = True) -> None:
        if count:
            await self.limiter.hit(s, self.config.failures_user, user.id)
            await self.limiter.hit(s, self.config.failures_ip, _ip(origin))
        await self.events.emit(s, "account:login:failure", actor=ANONYMOUS, user=who(user), origin=origin,
                               details={"reason": reason, "method": method})
        log.info("two-factor login refused", extra={"user_id": user.id, "method": method, "reason": reason})

    async def _use_proof(self, s: AsyncSession, pending: Pending, method: str, value, origin: Origin,
                         sent: list[Message]) -> int:
        """Check and use up the proof (raises Refused); returns the recovery codes left after a
        recovery code was used, else -1."""
        user = pending.user
        if method == TOTP:
            await self._use_totp(s, user, pending.totp, value)
        elif method == WEBAUTHN:
            await self._use_assertion(s, pending, value)
        else:
            if not await recovery.use_code(s, user.id, value, self.clock.now()):
                raise Refused("recovery_code_invalid", "This recovery code is not valid or was already used.")
            left = await recovery.remaining(s, user.id)
            await self.events.emit(s, "account:recovery_codes:used", actor=as_actor(user), user=who(user),
                                   origin=origin, details={"remaining": left})
            sent.append(notices.recovery_code_used(to=primary_address(user), username=user.username,
                                                   remaining=left, public_url=self.config.public_url))
            return left
        return -1  # not counted: the answer leaves recovery_codes_remaining unset

    # -- TOTP --------------------------------------------------------------------------------

    def _decrypt_seed(self, row: TotpCredential) -> str:
        try:
            return self.seeds.decrypt(row.user_id, row.key_version, row.seed_ciphertext)
        except totp.SeedDecryptError as exc:
            log.error("TOTP seed unreadable", extra={"user_id": row.user_id, "key_version": row.key_version,
                                                     "error": str(exc)})
            raise Refused("totp_unavailable", "Your authenticator app cannot be checked at the moment. Use a "
                          "security key or a recovery code.") from None

    @staticmethod
    def _totp_refusal(verdict: totp.Verdict) -> tuple[str, str]:
        if verdict is totp.Verdict.OUT_OF_SYNC:
            return "totp_out_of_sync", ("This code is from a time too far from now: your device's clock seems "
                                        "out of sync. Set it to update automatically, then enter the newest code.")
        return "totp_invalid", "The authenticator app code is incorrect."

    async def _use_totp(self, s: AsyncSession, user: User, row: TotpCredential | None, code: str) -> None:
        if row is None:
            raise Refused("method_not_enabled", "This account has no authenticator app. Use another method.")
        seed = self._decrypt_seed(row)
        now = self.clock.now()
        match = totp.match_code(seed, code, totp.step_at(now.timestamp()))
        if match.verdict is not totp.Verdict.ACCEPTED:
            raise Refused(*self._totp_refusal(match.verdict))
        fresh = [step for step in match.steps if step > row.last_used_step]
        replayed = Refused("totp_replayed", "This code was already used. Wait for the next code from your app.")
        if not fresh:
            raise replayed
        values = {"last_used_step": fresh[0], "last_used_at": now}
        if row.key_version != self.seeds.current:  # rotate the seed onto the newest key
            values["key_version"], values["seed_ciphertext"] = self.seeds.encrypt(user.id, seed)
        result = await (await s.connection()).execute(
            update(_TOTP).where(_TOTP.c.id == row.id, _TOTP.c.last_used_step < fresh[0]).values(**values))
        if result.rowcount != 1:
            raise replayed

    # -- WebAuthn ----------------------------------------------------------------------------

    async def _use_assertion(self, s: AsyncSession, pending: Pending, response) -> None:
        user = pending.user
        try:
            challenge = response.response.client_data.challenge
            uv = await webauthn.consume_challenge(s, challenge, user_id=user.id, ceremony=webauthn.AUTHENTICATE,
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
            result = await (await s.connection()).execute(update(_KEYS).where(
                _KEYS.c.id == row.id, _KEYS.c.sign_count == row.sign_count,
            ).values(sign_count=counter, last_used_at=self.clock.now()))
            if result.rowcount != 1:
                raise webauthn.WebAuthnRefused("webauthn_sign_count", "This security key was used twice at once. "
                                               "Try again.")
        except webauthn.WebAuthnRefused as exc:
            raise Refused(exc.reason, exc.message) from None
