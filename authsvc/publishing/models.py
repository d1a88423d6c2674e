"""Trusted publishing's tables: publishers, pending publishers, minted upload tokens, consumed
identity tokens (the replay store)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, ColumnElement, ForeignKey, Index, String, Text, UniqueConstraint, exists
from sqlalchemy.orm import Mapped, mapped_column

from authsvc.db import Base, new_id


class _SpecColumns:
    """What a publisher matches (see PublisherSpec in protos/gatehouse/auth/v1/publishing.proto).
    `lookup` is the indexed key an identity token's claims are looked up by (the issuer's kind
    decides it: "owner/repository" lowercased, the email, or the custom claims' canonical JSON);
    `spec_key` is a digest of the whole spec (unique per project)."""

    issuer_url: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))  # github | gitlab | forgejo | google | custom
    lookup: Mapped[str] = mapped_column(String(255))
    spec_key: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(255), default="")
    repository: Mapped[str] = mapped_column(String(255), default="")
    workflow: Mapped[str] = mapped_column(String(255), default="")
    environment: Mapped[str] = mapped_column(String(255), default="")
    email: Mapped[str] = mapped_column(String(255), default="")
    subject: Mapped[str] = mapped_column(String(255), default="")
    claims: Mapped[str] = mapped_column(Text, default="{}")  # custom issuers: canonical JSON object
    created_at: Mapped[dt.datetime]
    created_by: Mapped[str] = mapped_column(String(100))  # username, or "operator"


class Publisher(_SpecColumns, Base):
    __tablename__ = "trusted_publishers"
    __table_args__ = (UniqueConstraint("project_id", "spec_key"),
                      Index("ix_trusted_publishers_issuer_lookup", "issuer_url", "lookup"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    # The provider's immutable ids, bound by the first exchange that matches (empty until then): a
    # repository deleted and re-created under the same name has new ids and cannot publish.
    bound_repository_id: Mapped[str] = mapped_column(String(64), default="")
    bound_owner_id: Mapped[str] = mapped_column(String(64), default="")


class PendingPublisher(_SpecColumns, Base):
    """A publisher for a project name that does not exist yet: its first exchange creates the project
    (with `user_id` as its Owner) and becomes a `Publisher` of it."""

    __tablename__ = "pending_publishers"
    __table_args__ = (UniqueConstraint("normalized_name", "spec_key"),
                      Index("ix_pending_publishers_issuer_lookup", "issuer_url", "lookup"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_name: Mapped[str] = mapped_column(String(200))
    normalized_name: Mapped[str] = mapped_column(String(200), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)


class PublisherToken(Base):
    """An upload token minted by an exchange. The macaroon carries this row's id; the row is the
    server's record of its lifetime, its publishers and the run that asked for it, and (single
    use) whether it was used. Rows are swept once expired."""

    __tablename__ = "publisher_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    key_version: Mapped[int]
    issuer_url: Mapped[str] = mapped_column(String(255))
    # JSON: the claims that identify the run (repository, workflow, ref, sha, …), for the upload log.
    run_claims: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    single_use: Mapped[bool] = mapped_column(Boolean, default=False)
    used_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class PublisherTokenScope(Base):
    """One (publisher, project) a minted token may upload to. A publisher removed after minting
    takes its projects out of the token's reach (the row cascades away)."""

    __tablename__ = "publisher_token_scopes"

    token_id: Mapped[str] = mapped_column(ForeignKey("publisher_tokens.id", ondelete="CASCADE"),
                                          primary_key=True)
    publisher_id: Mapped[str] = mapped_column(ForeignKey("trusted_publishers.id", ondelete="CASCADE"),
                                              primary_key=True, index=True)
    project_id: Mapped[str] = mapped_column(String(36), index=True)


class ConsumedIdentityToken(Base):
    """The replay store: each (iss, jti) is exchanged once, across every replica (the primary key is
    the atomic check). Kept until the identity token's exp plus the leeway, then swept."""

    __tablename__ = "consumed_identity_tokens"

    issuer_url: Mapped[str] = mapped_column(String(255), primary_key=True)
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    keep_until: Mapped[dt.datetime] = mapped_column(index=True)


def has_publisher_clause(project_id: Any) -> ColumnElement[bool]:
    """SQL truth of "this project has a trusted publisher" (indexed; the token lookup reads it)."""
    return exists().where(Publisher.project_id == project_id)
