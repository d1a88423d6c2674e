"""Second factors (authenticator app, security keys, recovery codes), WebAuthn challenges and
pending logins. Secrets are stored encrypted (TOTP seeds) or as digests (everything else)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint,
                        false)
from sqlalchemy.orm import Mapped, mapped_column

from authsvc.db import Base, new_id


class TotpCredential(Base):
    """The account's authenticator app (one per account). Active once `confirmed_at` is set."""

    __tablename__ = "totp_credentials"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    # AES-GCM nonce + ciphertext of the seed, under the settings key of `key_version`.
    seed_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    key_version: Mapped[int] = mapped_column(Integer)
    # The last accepted 30-second step: any code of this step or an earlier one is refused.
    last_used_step: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime]
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class WebAuthnCredential(Base):
    """A security key or a passkey. A credential id is registered once, across all accounts.
    A passkey (`discoverable`) was registered as a resident key with user verification, and can
    also sign its user in without a password."""

    __tablename__ = "webauthn_credentials"
    __table_args__ = (UniqueConstraint("user_id", "label"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    credential_id: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    # fido2's AttestedCredentialData: AAGUID, credential id and COSE public key.
    credential_data: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    label: Mapped[str] = mapped_column(String(64))
    transports: Mapped[str] = mapped_column(String(100), default="")
    discoverable: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[dt.datetime]
    last_used_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class RecoveryCode(Base):
    """One single-use recovery code, stored as a per-user salted SHA-256 (see recovery.py)."""

    __tablename__ = "recovery_codes"
    __table_args__ = (UniqueConstraint("user_id", "code_hash"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class WebAuthnChallenge(Base):
    """A single-use WebAuthn challenge (its SHA-256), bound to the user, the ceremony and, for a
    login, the pending login it was issued for."""

    __tablename__ = "webauthn_challenges"
    __table_args__ = (Index("ix_webauthn_challenges_user_id_expires_at", "user_id", "expires_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    challenge_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    ceremony: Mapped[str] = mapped_column(String(16))  # "register" | "authenticate"
    pending_login_id: Mapped[str | None] = mapped_column(
        ForeignKey("pending_logins.id", ondelete="CASCADE"), nullable=True, index=True
    )
    user_verification: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]


class PasskeyChallenge(Base):
    """A single-use challenge of a passwordless (passkey) login (its SHA-256). It belongs to no
    user yet: the credential that answers it names the user."""

    __tablename__ = "passkey_challenges"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    challenge_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class PendingLogin(Base):
    """A password-verified login waiting for its second factor (the token's SHA-256 only)."""

    __tablename__ = "pending_logins"
    __table_args__ = (Index("ix_pending_logins_user_id_expires_at", "user_id", "expires_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    ip_address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="")
