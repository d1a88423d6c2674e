"""Uploads with tokens minted by the exchange (the tokens area's verifier calls this for a token with
the publisher-only caveat; see `PublisherUploads` in tokens/verification.py).

The signed caveats (the projects by name and id, the expiry) are checked first; then the
minted-token row, the server's own record: it exists (not swept), its key version, its expiry,
and the scope row naming this project, which exists only while the publisher that minted it does
(removing a publisher takes its projects out of reach at once). A single-use token is spent by the
upload that uses it: one atomic UPDATE, so of parallel uploads exactly one passes.
"""

from __future__ import annotations

import json

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authsvc.errors import TokenDenied, TokenInvalid
from authsvc.projects.models import Project
from authsvc.publishing.models import Publisher, PublisherToken, PublisherTokenScope
from authsvc.publishing.service import publisher_view
from authsvc.tokens.caveats import Context, Failure, ProjectRef, Projects, Purpose, Success, check_all
from authsvc.tokens.codec import AuthenticToken
from authsvc.tokens.verification import PublisherGrant, UploadGrant, raise_failure
from gatehouse.infra.clock import Clock, as_utc


class PublisherTokenUploads:
    def __init__(self, *, db: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def _row(self, s: AsyncSession, token: AuthenticToken) -> PublisherToken:
        row = await s.get(PublisherToken, token.token_id)
        if row is None:
            raise TokenInvalid("This trusted publisher's token has expired or was never issued: exchange a new "
                               "identity token.", reason="token_deleted")
        if row.key_version != token.key_version:
            raise TokenInvalid("This is not a valid API token.", reason="key_version_mismatch")
        expires = as_utc(row.expires_at)
        if self.clock.now() >= expires:
            raise TokenDenied(f"This trusted publisher's token expired at {expires:%Y-%m-%d %H:%M:%S} UTC: "
                              "exchange a new identity token.", reason="expired")
        if row.single_use and row.used_at is not None:
            raise TokenDenied("This single-use token has been used already: exchange a new identity token for "
                              "each upload.", reason="token_used")
        return row

    async def check_token(self, token: AuthenticToken) -> None:
        """At an upload's headers: what the token alone decides (caveats but the projects, its row)."""
        self._check(token, Context(now=self.clock.now(), user_id="", purpose=Purpose.UPLOAD),
                    skip_projects=True)
        async with self.db() as s:
            await self._row(s, token)

    async def verify_upload(self, token: AuthenticToken, project_name: str, normalized: str) -> UploadGrant:
        async with self.db() as s, s.begin():
            project = await s.scalar(select(Project).where(Project.normalized_name == normalized))
            ref = ProjectRef(project.id, project.normalized_name) if project is not None else None
            self._check(token, Context(now=self.clock.now(), user_id="", purpose=Purpose.UPLOAD,
                                       project_name=project_name, project=ref))
            row = await self._row(s, token)
            assert project is not None  # the Projects caveat passed, so the project exists
            publisher = await s.scalar(
                select(Publisher).join(PublisherTokenScope, PublisherTokenScope.publisher_id == Publisher.id)
                .where(PublisherTokenScope.token_id == row.id, PublisherTokenScope.project_id == project.id))
            if publisher is None:
                raise TokenDenied(f"The trusted publisher this token was minted for was removed from "
                                  f"'{project.name}'.", reason="publisher_removed")
            if row.single_use:
                spent = await s.execute(update(PublisherToken).where(PublisherToken.id == row.id,
                                                                     PublisherToken.used_at.is_(None))
                                        .values(used_at=self.clock.now()))
                if spent.rowcount != 1:  # type: ignore[attr-defined]
                    raise TokenDenied("This single-use token has been used already: exchange a new identity "
                                      "token for each upload.", reason="token_used")
            view = publisher_view(publisher, project.name)
            grant = PublisherGrant(id=publisher.id, kind=publisher.kind, display=view.display,
                                   issuer_url=row.issuer_url, run_claims=json.loads(row.run_claims))
            return UploadGrant(user_id=publisher.id, username=view.display[:100], project_id=project.id,
                               project_name=project.name, token_id=row.id, project_created=False, role="",
                               publisher=grant)

    @staticmethod
    def _check(token: AuthenticToken, ctx: Context, *, skip_projects: bool = False) -> None:
        caveats = tuple(c for c in token.caveats if not (skip_projects and isinstance(c, Projects)))
        result = check_all(caveats, ctx)
        if not isinstance(result, Success):
            raise_failure(result if isinstance(result, Failure) else Failure("Token check failed.", "internal", True))
