"""Users, their email addresses, sessions and single-use emailed tokens."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from authsvc.db import Base, new_id


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(50))
    # Case-insensitive uniqueness, as PyPI: "Alice" and "alice" are one account name.
    username_canonical: Mapped[str] = mapped_column(String(50), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    password_hash: Mapped[str | None] = mapped_column(Text, nullable=True)
    password_changed_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str] = mapped_column(String(200), default="")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime]
    last_login_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)

    emails: Mapped[list["Email"]] = relationship(back_populates="user", cascade="all, delete-orphan",
                                                 lazy="selectin")


class Email(Base):
    __tablename__ = "emails"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    address: Mapped[str] = mapped_column(String(254))
    address_canonical: Mapped[str] = mapped_column(String(254), unique=True)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    primary: Mapped[bool] = mapped_column(Boolean, default=False)
    verified_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[dt.datetime]

    user: Mapped[User] = relationship(back_populates="emails")


class Session(Base):
    """A browser session. Only the SHA-256 of the session token is stored."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    token_hash: Mapped[bytes] = mapped_column(unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    authenticated_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    ip_address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    # How the login proved who it was: "password", "totp", "webauthn", "passkey", "recovery_code"
    # (policies that want a phishing-resistant login read it; "" for sessions from before).
    auth_method: Mapped[str] = mapped_column(String(16), default="", server_default="")


class OneTimeToken(Base):
    """A single-use emailed token (email verification, password reset), stored as its SHA-256."""

    __tablename__ = "one_time_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    token_hash: Mapped[bytes] = mapped_column(unique=True)
    purpose: Mapped[str] = mapped_column(String(32))  # "verify_email" | "password_reset"
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    email_id: Mapped[str | None] = mapped_column(
        ForeignKey("emails.id", ondelete="CASCADE"), nullable=True
    )
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class KnownPlace(Base):
    """A browser (the device id of its signed device token) or a network (an IPv4 /24, an IPv6
    /64) from which a login of the user completed: a login from either is not held."""

    __tablename__ = "known_login_places"
    __table_args__ = (UniqueConstraint("user_id", "kind", "value"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # "device" | "network"
    value: Mapped[str] = mapped_column(String(64))
    first_seen_at: Mapped[dt.datetime]


class HeldLogin(Base):
    """A login from a new browser and network, held until the link mailed to the user is followed
    in the browser that started it. Both secrets are stored as their SHA-256 only."""

    __tablename__ = "held_logins"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    link_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    browser_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(32))
    device_id: Mapped[str] = mapped_column(String(64), default="")
    network: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
