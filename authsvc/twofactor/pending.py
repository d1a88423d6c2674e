"""The seam between password login and the second factor, and the pending logins between them.

`AccountsService.login` asks `methods(s, user)`; when the user has a second factor it calls
`start_pending_login(s, user, origin)` and hands the token out instead of a session. The token
is short-lived (5 minutes by default), single-use, and stored as its SHA-256 only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import secrets
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, delete, exists, literal, or_, select, union_all, update
from sqlalchemy.orm import Session, raiseload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.ext.asyncio import AsyncSession

from authsvc.accounts.models import Email, User
from authsvc.errors import Unauthenticated
from authsvc.twofactor.models import PendingLogin, RecoveryCode, TotpCredential, WebAuthnCredential
from gatehouse.infra.clock import Clock, as_utc
from gatehouse.infra.outbox import Origin

TOTP = "totp"
WEBAUTHN = "webauthn"
RECOVERY_CODE = "recovery_code"
MAX_TOKEN = 200


class PendingLoginInvalid(Unauthenticated):
    def __init__(self, message: str = "Your login has expired. Log in again with your password."):
        super().__init__(message, reason="pending_login_invalid")


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def has_factor_clause(user_id: Any) -> ColumnElement[bool]:
    """SQL truth of "this user has an active second factor" (both lookups are indexed)."""
    return or_(
        exists().where(TotpCredential.user_id == user_id, TotpCredential.confirmed_at.is_not(None)),
        exists().where(WebAuthnCredential.user_id == user_id),
    )


async def has_second_factor(s: AsyncSession, user_id: str) -> bool:
    return bool(await s.scalar(select(has_factor_clause(user_id))))


def has_second_factor_sync(s: Session, user_id: str) -> bool:
    return bool(s.scalar(select(has_factor_clause(user_id))))


async def users_with_second_factor(s: AsyncSession, user_ids: Iterable[str]) -> set[str]:
    ids = list(set(user_ids))
    if not ids:
        return set()
    query = union_all(
        select(TotpCredential.user_id).where(TotpCredential.user_id.in_(ids), TotpCredential.confirmed_at.is_not(None)),
        select(WebAuthnCredential.user_id).where(WebAuthnCredential.user_id.in_(ids)),
    )
    return set(await s.scalars(query))


async def active_methods(s: AsyncSession, user_id: str) -> tuple[str, ...]:
    """The user's second-factor methods, in one query: ("totp", "webauthn", "recovery_code")."""
    query = union_all(
        select(literal(TOTP)).where(exists().where(TotpCredential.user_id == user_id,
                                                   TotpCredential.confirmed_at.is_not(None))),
        select(literal(WEBAUTHN)).where(exists().where(WebAuthnCredential.user_id == user_id)),
        select(literal(RECOVERY_CODE)).where(exists().where(RecoveryCode.user_id == user_id,
                                                            RecoveryCode.used_at.is_(None))),
    )
    found = set(await s.scalars(query))
    if not found & {TOTP, WEBAUTHN}:
        return ()  # recovery codes alone are not a second factor
    return tuple(m for m in (TOTP, WEBAUTHN, RECOVERY_CODE) if m in found)


_PENDING = PendingLogin.__table__
_CONSUME = (update(_PENDING).values(used_at=bindparam("now"))
            .where(_PENDING.c.id == bindparam("pid"), _PENDING.c.used_at.is_(None),
                   _PENDING.c.expires_at > bindparam("now")))


@functools.cache
def _resolve_query(with_totp: bool, with_key: bool):
    """The one query of the login hot path, built once per shape (its values are bound per call):
    the pending login, its user, the primary address and what the attempt needs (the user's
    confirmed app, or the user's key it names). Each extra is an indexed lookup."""
    query = (select(PendingLogin.id, PendingLogin.used_at, PendingLogin.expires_at, User, Email,
                    TotpCredential if with_totp else literal(None), WebAuthnCredential if with_key else literal(None))
             .join(User, User.id == PendingLogin.user_id)
             .outerjoin(Email, and_(Email.user_id == User.id, Email.primary.is_(True)))
             .where(PendingLogin.token_hash == bindparam("token_hash")).options(raiseload(User.emails)))
    if with_totp:
        query = query.outerjoin(TotpCredential, and_(TotpCredential.user_id == User.id,
                                                     TotpCredential.confirmed_at.is_not(None)))
    if with_key:
        query = query.outerjoin(WebAuthnCredential, and_(
            WebAuthnCredential.user_id == User.id, WebAuthnCredential.credential_id == bindparam("credential_id")))
    return query


@dataclasses.dataclass(frozen=True)
class Pending:
    id: str
    user: User
    expires_at: dt.datetime
    totp: TotpCredential | None = None  # the confirmed app, when asked for (`with_totp`)
    key: WebAuthnCredential | None = None  # the user's key of `credential_id`, when asked for


class PendingLogins:
    """Implements the accounts service's `SecondFactor` seam and resolves pending-login tokens."""

    def __init__(self, *, clock: Clock, lifetime: dt.timedelta):
        self.clock = clock
        self.lifetime = lifetime

    async def methods(self, s: AsyncSession, user: User) -> Sequence[str]:
        return await active_methods(s, user.id)

    async def start_pending_login(self, s: AsyncSession, user: User, origin: Origin | None) -> str:
        now = self.clock.now()
        origin = origin or Origin()
        await s.execute(delete(PendingLogin).where(PendingLogin.user_id == user.id, PendingLogin.expires_at <= now))
        token = secrets.token_urlsafe(32)
        s.add(PendingLogin(token_hash=token_digest(token), user_id=user.id, created_at=now,
                           expires_at=now + self.lifetime, ip_address=origin.ip_address[:64],
                           user_agent=origin.user_agent[:300]))
        await s.flush()
        return token

    async def resolve(self, s: AsyncSession, token: str, **options) -> Pending:
        return await s.run_sync(self.resolve_sync, token, **options)

    def resolve_sync(self, s: Session, token: str, *, with_totp: bool = False,
                     credential_id: bytes | None = None) -> Pending:
        """The live pending login of a token, or PendingLoginInvalid (unknown, used, expired,
        or its user disabled since)."""
        if not token or len(token) > MAX_TOKEN:
            raise PendingLoginInvalid()
        params = {"token_hash": token_digest(token), "credential_id": credential_id}
        found = s.execute(_resolve_query(with_totp, credential_id is not None), params).first()
        if found is None:
            raise PendingLoginInvalid()
        pending_id, used_at, expires_at, user, primary, totp, key = found
        if used_at is not None or as_utc(expires_at) <= self.clock.now() or not user.is_active:
            raise PendingLoginInvalid()
        set_committed_value(user, "emails", [primary] if primary is not None else [])  # only the primary
        return Pending(id=pending_id, user=user, expires_at=as_utc(expires_at), totp=totp, key=key)

    def consume_sync(self, s: Session, pending_id: str) -> None:
        """Mark the pending login used; atomic, so two completions cannot both succeed."""
        result = s.connection().execute(_CONSUME, {"pid": pending_id, "now": self.clock.now()})
        if result.rowcount != 1:
            raise PendingLoginInvalid("This login was already completed or has expired. Log in again.")
