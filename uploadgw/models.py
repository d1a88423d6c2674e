"""The gateway's own tables: projects as seen here, releases, files, used filenames, limits, outbox.

Projects are owned by authsvc; the row here mirrors its id and name and carries what only the
gateway knows (a serial bumped by every change, the total stored size). A file row is marked
deleted before its bytes are removed and only then dropped, so that removal can be resumed.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gatehouse.infra.db import make_metadata
from gatehouse.infra.outbox import make_outbox_table


class Base(DeclarativeBase):
    metadata = make_metadata()
    type_annotation_map = {dt.datetime: DateTime(timezone=True)}


def new_id() -> str:
    return str(uuid.uuid4())


_LIVE = text("deleted_at IS NULL")


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (
        # One live project per name; a deleted one may linger while its files are removed.
        Index("uq_projects_live_normalized_name", "normalized_name", unique=True,
              sqlite_where=_LIVE, postgresql_where=_LIVE),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # authsvc's project id
    name: Mapped[str] = mapped_column(String(200))
    normalized_name: Mapped[str] = mapped_column(String(200), index=True)
    # Bumped by every change that alters the project's index page (cache key).
    serial: Mapped[int] = mapped_column(Integer, default=1)
    total_size: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime]
    deleted_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class ProjectLimits(Base):
    """Per-project size limits set by operators (by normalised name; None means the default)."""

    __tablename__ = "project_limits"

    normalized_name: Mapped[str] = mapped_column(String(200), primary_key=True)
    file_size_limit: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    total_size_limit: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[dt.datetime]


class Release(Base):
    __tablename__ = "releases"
    __table_args__ = (Index("uq_releases_project_version", "project_id", "canonical_version", unique=True),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    project_name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100))
    canonical_version: Mapped[str] = mapped_column(String(100))
    yanked: Mapped[bool] = mapped_column(Boolean, default=False)
    yanked_reason: Mapped[str] = mapped_column(Text, default="")
    requires_python: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[dt.datetime]
    deleted_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class File(Base):
    __tablename__ = "files"
    __table_args__ = (
        Index("ix_files_release_live", "release_id", "deleted_at"),
        # One sdist per release (live files only).
        Index("uq_files_release_sdist", "release_id", unique=True,
              sqlite_where=text("packagetype = 'sdist' AND deleted_at IS NULL"),
              postgresql_where=text("packagetype = 'sdist' AND deleted_at IS NULL")),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(String(36), index=True)
    filename: Mapped[str] = mapped_column(String(255), unique=True)
    packagetype: Mapped[str] = mapped_column(String(20))
    python_version: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    blake2_256: Mapped[str] = mapped_column(String(64))
    md5: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Storage key chosen by the server from the content hash, never from the client's filename.
    path: Mapped[str] = mapped_column(String(200), index=True)
    requires_python: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # PEP 658: the wheel's METADATA file (small: bounded on upload), served as `<file URL>.metadata`.
    metadata_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    metadata_content: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)
    uploaded_at: Mapped[dt.datetime]
    uploader_id: Mapped[str] = mapped_column(String(36))
    uploader_name: Mapped[str] = mapped_column(String(100))
    # Which API token was used (its public id; the token itself is never seen by storage).
    token_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class Filename(Base):
    """Every filename ever accepted, kept after the file is deleted: a filename is never reused."""

    __tablename__ = "filenames"

    filename: Mapped[str] = mapped_column(String(255), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[dt.datetime]


outbox = make_outbox_table(Base.metadata)
metadata = Base.metadata
