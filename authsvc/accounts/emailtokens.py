"""Single-use emailed tokens (email verification, password reset), stored only as their SHA-256.

A token is consumed atomically (`UPDATE … WHERE used_at IS NULL`), so two racing uses of one
link cannot both succeed.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from authsvc.accounts.models import OneTimeToken, User
from authsvc.accounts.validation import new_secret, token_digest
from authsvc.errors import InvalidArgument
from gatehouse.infra.clock import Clock, as_utc

MAX_TOKEN_CHARS = 200


class Purpose(str, enum.Enum):
    VERIFY_EMAIL = "verify_email"
    PASSWORD_RESET = "password_reset"


_WHAT = {Purpose.VERIFY_EMAIL: "verification", Purpose.PASSWORD_RESET: "password reset"}


class OneTimeTokens:
    def __init__(self, clock: Clock):
        self.clock = clock

    async def issue(self, s: AsyncSession, purpose: Purpose, *, user_id: str, email_id: str | None,
                    lifetime: dt.timedelta) -> str:
        """Store a new token's digest in the caller's transaction; return the token (mail it, once)."""
        token = new_secret()
        now = self.clock.now()
        s.add(OneTimeToken(token_hash=token_digest(token), purpose=purpose.value, user_id=user_id,
                           email_id=email_id, created_at=now, expires_at=now + lifetime))
        await s.flush()
        return token

    async def peek(self, s: AsyncSession, purpose: Purpose, token: str) -> OneTimeToken:
        """The token's row if it can be used now; InvalidArgument saying why when it cannot.

        A password-reset token is also void once the password changed after it was issued.
        """
        what = _WHAT[purpose]
        if not token:
            raise InvalidArgument(f"The {what} link has no token.", reason="token_missing")
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidArgument(f"The {what} link is not valid.", reason="token_invalid")
        row = await s.scalar(select(OneTimeToken).where(OneTimeToken.token_hash == token_digest(token)))
        if row is None or row.purpose != purpose.value:
            raise InvalidArgument(f"The {what} link is not valid. Request a new one.", reason="token_invalid")
        now = self.clock.now()
        if row.used_at is not None:
            raise InvalidArgument(f"The {what} link was already used or has been replaced. "
                                  "Request a new one.", reason="token_used")
        if as_utc(row.expires_at) <= now:
            raise InvalidArgument(f"The {what} link has expired. Request a new one.", reason="token_expired")
        if purpose is Purpose.PASSWORD_RESET:
            user = await s.get(User, row.user_id)
            changed = as_utc(user.password_changed_at) if user else None
            if user is None or (changed is not None and as_utc(row.created_at) < changed):
                raise InvalidArgument("The password reset link is no longer valid: the password has "
                                      "changed since. Request a new one.", reason="token_void")
        return row

    async def consume(self, s: AsyncSession, purpose: Purpose, token: str) -> OneTimeToken:
        """`peek`, then mark the token used; only one of two racing uses succeeds."""
        row = await self.peek(s, purpose, token)
        result = await s.execute(
            update(OneTimeToken).where(OneTimeToken.id == row.id, OneTimeToken.used_at.is_(None))
            .values(used_at=self.clock.now())
        )
        if result.rowcount != 1:
            raise InvalidArgument(f"The {_WHAT[purpose]} link was already used. Request a new one.",
                                  reason="token_used")
        return row

    async def void(self, s: AsyncSession, purpose: Purpose, *, user_id: str | None = None,
                   email_id: str | None = None) -> None:
        """Mark every unused token of this purpose for the user (or the email) as used."""
        query = update(OneTimeToken).where(OneTimeToken.purpose == purpose.value,
                                           OneTimeToken.used_at.is_(None))
        if user_id is not None:
            query = query.where(OneTimeToken.user_id == user_id)
        if email_id is not None:
            query = query.where(OneTimeToken.email_id == email_id)
        await s.execute(query.values(used_at=self.clock.now()))
