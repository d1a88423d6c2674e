"""Projects (PEP 503-normalised unique names, stable ids) and Owner/Maintainer roles."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from authsvc.db import Base, new_id

OWNER = "Owner"
MAINTAINER = "Maintainer"


class Project(Base):
    __tablename__ = "projects"

    # A new id for every project, even one re-created under an old name: tokens carry the id.
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    normalized_name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[dt.datetime]
    two_factor_required: Mapped[bool] = mapped_column(Boolean, default=False)
    # Uploads only from the project's trusted publishers: long-lived API tokens are refused.
    trusted_publishing_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Collaborators act on it (pages, new tokens) only from a session that logged in with a
    # security key or a passkey (authsvc/projects/phishing.py).
    phishing_resistant_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Role(Base):
    __tablename__ = "roles"
    __table_args__ = (UniqueConstraint("project_id", "user_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role_name: Mapped[str] = mapped_column(String(20))  # OWNER | MAINTAINER
    created_at: Mapped[dt.datetime]
