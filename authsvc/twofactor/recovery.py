"""Recovery codes: eight single-use codes of 64 random bits each, shown once, stored as digests.

Why SHA-256 and not argon2: each code is 64 bits from the system CSPRNG, not a human choice, so
a slow hash buys nothing against guessing (guesses online are rate limited to a handful per five
minutes). The digest is salted with the user id, so an attacker holding a copy of the database
must search 2^64 / 8 per account rather than attack every account's codes at once. A fast digest
also lets a login find the code with one indexed query instead of eight argon2 verifications.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from authsvc.errors import InvalidArgument
from authsvc.twofactor.models import RecoveryCode

CODE_COUNT = 8
CODE_BYTES = 8  # 64 bits -> 16 hex characters
_SEPARATORS = re.compile(r"[\s\-]+")
_HEX = re.compile(r"^[0-9a-f]{16}$")


def new_codes() -> list[str]:
    return [secrets.token_hex(CODE_BYTES) for _ in range(CODE_COUNT)]


def normalise(code: str) -> str:
    cleaned = _SEPARATORS.sub("", code or "").lower()
    if not _HEX.match(cleaned):
        raise InvalidArgument("Enter one of your recovery codes: 16 characters, 0-9 and a-f.",
                              reason="recovery_code_malformed")
    return cleaned


def digest(user_id: str, code: str) -> bytes:
    return hashlib.sha256(f"gatehouse-recovery-code:{user_id}:{code}".encode()).digest()


async def replace_codes(s: AsyncSession, user_id: str, now: dt.datetime) -> list[str]:
    """Void every earlier code of the user and store a fresh set; returns the codes in clear."""
    await s.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = new_codes()
    s.add_all([RecoveryCode(user_id=user_id, code_hash=digest(user_id, c), created_at=now) for c in codes])
    await s.flush()
    return codes


async def remove_codes(s: AsyncSession, user_id: str) -> None:
    await s.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))


def use_code(s: Session, user_id: str, code: str, now: dt.datetime) -> bool:
    """Mark the code used if it is one of the user's unused codes. Atomic: of two requests racing
    with the same code, exactly one gets True."""
    result = s.execute(
        update(RecoveryCode)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.code_hash == digest(user_id, code),
               RecoveryCode.used_at.is_(None))
        .values(used_at=now)
    )
    return result.rowcount == 1


def remaining(s: Session, user_id: str) -> int:
    return s.scalar(select(func.count()).select_from(RecoveryCode).where(
        RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))) or 0
