"""API tokens. The macaroon's root key is derived from a server secret and never stored."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from authsvc.db import Base, new_id


class ApiToken(Base):
    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("user_id", "description"), Index("ix_api_tokens_expires_at", "expires_at"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    description: Mapped[str] = mapped_column(String(100))
    # Which server secret the root key was derived from (key rotation).
    key_version: Mapped[int] = mapped_column(Integer)
    scope_all_projects: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime]
    last_used_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    # Every token expires (settings: a default and a maximum). Migration 0003 gave the tokens that
    # had none the default lifetime from the upgrade on.
    expires_at: Mapped[dt.datetime]
    # The restrictions chosen at creation, as signed into the token (for listing; "" when none):
    # client networks comma-separated, and the release version.
    allowed_networks: Mapped[str] = mapped_column(String(1000), default="")
    release_version: Mapped[str] = mapped_column(String(100), default="")
    # The expiry sweep (tokens/expiry.py) claims each of these once, whichever replica runs it.
    expiry_notice_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    expired_recorded_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)

    projects: Mapped[list["ApiTokenProject"]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )


class ApiTokenProject(Base):
    """One project in a project-scoped token's scope. The project id pins it to that project:
    a project deleted and re-created under the same name has a new id."""

    __tablename__ = "api_token_projects"

    token_id: Mapped[str] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[str] = mapped_column(String(36), primary_key=True, index=True)
    project_name: Mapped[str] = mapped_column(String(200))
