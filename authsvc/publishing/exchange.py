"""The trusted-publishing exchange: a CI job's identity token in, a short-lived upload token out.

One request, top to bottom: verify the identity token (identity.py: signature, issuer, audience,
times) → find the publishers its claims match (by issuer and lookup key, then every field, then the
bound immutable ids) → else a pending publisher it matches, which creates its project → in one
transaction: consume (iss, jti) (the primary key refuses a second use on any replica), bind ids on
first use, convert the pending publisher, record the minted token and its scope, and the events →
the macaroon (caveats: publisher-only, the projects by name and id, the expiry).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authsvc.accounts.models import User
from authsvc.errors import ExchangeRefused
from authsvc.projects.models import Project
from authsvc.projects.service import ProjectsService
from authsvc.publishing.identity import IdentityToken, IdentityVerifier
from authsvc.publishing.kinds import immutable_ids, lookup_of, mismatch, run_claims
from authsvc.publishing.models import (
    ConsumedIdentityToken,
    PendingPublisher,
    Publisher,
    PublisherToken,
    PublisherTokenScope,
)
from authsvc.publishing.service import publisher_details, publisher_view, spec_columns, spec_of
from authsvc.tokens.caveats import Caveat, Expiry, Projects, PublisherOnly
from authsvc.tokens.codec import TokenCodec
from gatehouse.infra.clock import Clock
from gatehouse.infra.outbox import ActorRef, EventEmitter, Origin

log = logging.getLogger(__name__)
MAX_MATCHED = 50  # publishers one run may match (the Projects caveat holds at most 100)
SWEEP_EVERY = dt.timedelta(minutes=1)


@dataclasses.dataclass(frozen=True)
class Minted:
    token: str
    expires_at: dt.datetime
    project_names: tuple[str, ...]
    single_use: bool


@dataclasses.dataclass(frozen=True)
class _Match:
    """A publisher the claims match, its project, and the ids to bind (None: nothing to bind)."""

    publisher: Publisher
    project: Project
    bind: tuple[str, str] | None


class Exchange:
    def __init__(self, *, db: async_sessionmaker[AsyncSession], clock: Clock, events: EventEmitter,
                 identity: IdentityVerifier, codec: TokenCodec, projects: ProjectsService,
                 token_lifetime: dt.timedelta, leeway: dt.timedelta, audience: str) -> None:
        self.db = db
        self.clock = clock
        self.events = events
        self.identity = identity
        self.codec = codec
        self.projects = projects
        self.token_lifetime = token_lifetime
        self.leeway = leeway
        self.audience = audience
        self._next_sweep: dt.datetime | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.identity.issuers)

    def check_enabled(self) -> None:
        if not self.enabled:
            raise ExchangeRefused("Trusted publishing is not enabled on this index: no identity-token issuer is "
                                  "configured. Use an API token, or ask the operators to configure your CI's "
                                  "issuer.", reason="not_enabled")

    async def mint(self, token: str, *, single_use: bool, origin: Origin | None = None) -> Minted:
        self.check_enabled()
        if not isinstance(token, str) or not token:
            raise ExchangeRefused('The request has no identity token: send {"token": "<the CI job\'s OIDC token>"}.',
                                  reason="invalid_payload")
        identity = await self.identity.verify(token)
        await self._sweep(self.clock.now())
        async with self.db() as s, s.begin():
            return await self._mint(s, identity, single_use, origin)

    async def _mint(self, s: AsyncSession, identity: IdentityToken, single_use: bool,
                    origin: Origin | None) -> Minted:
        now = self.clock.now()
        # First, so that concurrent exchanges of one token serialise on its key: one inserts, the
        # rest fail (IntegrityError) and mint nothing.
        s.add(ConsumedIdentityToken(issuer_url=identity.issuer.url, jti=identity.jti,
                                    keep_until=identity.expires_at + self.leeway))
        try:
            await s.flush()
        except IntegrityError:  # the (iss, jti) row exists: exchanged already, here or on another replica
            raise ExchangeRefused("This identity token has been used already: request a new one for each "
                                  "exchange.", reason="invalid_reuse_token") from None
        matches = await self._matches(s, identity)
        if not matches:
            matches = [await self._convert_pending(s, identity, origin)]
        claims = run_claims(identity.issuer.kind, identity.claims)
        expires = (now + self.token_lifetime).replace(microsecond=0)
        row = PublisherToken(key_version=self.codec.current_version, issuer_url=identity.issuer.url,
                             run_claims=json.dumps(claims, sort_keys=True), created_at=now, expires_at=expires,
                             single_use=single_use, used_at=None)
        s.add(row)
        await s.flush()
        for match in matches:
            if match.bind is not None:  # first use: only if still unbound (a racing exchange may have bound it)
                await s.execute(update(Publisher).where(Publisher.id == match.publisher.id,
                                                        Publisher.bound_repository_id == "")
                                .values(bound_repository_id=match.bind[0], bound_owner_id=match.bind[1]))
            s.add(PublisherTokenScope(token_id=row.id, publisher_id=match.publisher.id, project_id=match.project.id))
            view = publisher_view(match.publisher, match.project.name)
            await self.events.emit(
                s, "project:publisher:token:mint", actor=ActorRef.publisher(view.id, view.display),
                project=(match.project.id, match.project.name), origin=origin,
                details={**publisher_details(view), "token_id": row.id, "expires_at": expires.isoformat(),
                         "single_use": single_use, **{f"claim_{k}": v for k, v in claims.items()}})
        await s.flush()
        projects = sorted({(m.project.normalized_name, m.project.id) for m in matches})
        caveats: list[Caveat] = [PublisherOnly(),
                                 Projects(tuple(n for n, _ in projects), tuple(i for _, i in projects)),
                                 Expiry(int(now.timestamp()), int(expires.timestamp()))]
        secret = self.codec.mint(row.id, caveats)
        return Minted(token=secret, expires_at=expires, project_names=tuple(m.project.name for m in matches),
                      single_use=single_use)

    async def _sweep(self, now: dt.datetime) -> None:
        """Forget consumed identity tokens past their exp + leeway, and minted tokens long expired: in
        a transaction of its own (a refused exchange does not undo it), at most once a minute per
        replica (a row kept a little longer changes nothing)."""
        if self._next_sweep is not None and now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_EVERY
        async with self.db() as s, s.begin():
            await s.execute(delete(ConsumedIdentityToken).where(ConsumedIdentityToken.keep_until < now))
            await s.execute(delete(PublisherToken).where(PublisherToken.expires_at < now - dt.timedelta(hours=1)))

    async def _matches(self, s: AsyncSession, identity: IdentityToken) -> list[_Match]:
        issuer, claims = identity.issuer, identity.claims
        lookup = lookup_of(issuer, claims)
        if lookup is None:
            raise ExchangeRefused(_missing_claims(issuer.kind), reason="invalid_publisher")
        rows = (await s.execute(select(Publisher, Project).join(Project, Project.id == Publisher.project_id)
                                .where(Publisher.issuer_url == issuer.url, Publisher.lookup == lookup)
                                .order_by(Project.normalized_name).limit(MAX_MATCHED))).all()
        matches, refusals = [], []
        for publisher, project in rows:
            why = mismatch(spec_of(publisher), claims)
            if why is None:
                why, bind = _binding(publisher, claims)
                if why is None:
                    matches.append(_Match(publisher, project, bind))
                    continue
            refusals.append(f"{project.name}: {why}")
        if not matches and refusals and not await self._pending_exists(s, identity, lookup):
            raise ExchangeRefused(f"No trusted publisher matches this run ({'; '.join(refusals[:3])}). Check the "
                                  "publisher's settings on the project page against the workflow.",
                                  reason="invalid_publisher")
        return matches

    async def _pending_exists(self, s: AsyncSession, identity: IdentityToken, lookup: str) -> bool:
        return bool(await s.scalar(select(PendingPublisher.id).where(
            PendingPublisher.issuer_url == identity.issuer.url, PendingPublisher.lookup == lookup).limit(1)))

    async def _convert_pending(self, s: AsyncSession, identity: IdentityToken, origin: Origin | None) -> _Match:
        """The pending publisher the claims match becomes a publisher of its new project, which is created
        with the user who registered it as Owner."""
        issuer, claims = identity.issuer, identity.claims
        lookup = lookup_of(issuer, claims) or ""
        rows = (await s.execute(select(PendingPublisher, User).join(User, User.id == PendingPublisher.user_id)
                                .where(PendingPublisher.issuer_url == issuer.url, PendingPublisher.lookup == lookup)
                                .order_by(PendingPublisher.created_at))).all()
        pending = next(((p, u) for p, u in rows if mismatch(spec_of(p), claims) is None), None)
        if pending is None:
            raise ExchangeRefused(f"No trusted publisher of {issuer.name} matches this run: add one on the project's "
                                  "page (or a pending publisher for a new project) naming this repository, "
                                  "workflow and environment.", reason="invalid_publisher")
        row, user = pending
        if not user.is_active:
            raise ExchangeRefused("The account that registered this pending publisher is disabled.",
                                  reason="invalid_pending_publisher")
        if await s.scalar(select(Project.id).where(Project.normalized_name == row.normalized_name)):
            raise ExchangeRefused(f"The project '{row.project_name}' exists already, so this pending publisher "
                                  "cannot create it: ask the project's Owners to add the publisher.",
                                  reason="invalid_pending_publisher")
        actor = ActorRef.user(user.id, user.username)
        try:
            values = await s.run_sync(lambda sync: self.projects.create_with_owner(
                sync.connection(), row.project_name, (user.id, user.username), actor=actor, origin=origin))
        except IntegrityError:  # created by another upload or exchange since the check above
            raise ExchangeRefused(f"The project '{row.project_name}' was created by another upload at the same "
                                  "moment, so this pending publisher cannot create it. If that was another run "
                                  "of this workflow, request a new identity token and try again; otherwise ask "
                                  "the project's Owners to add the publisher.",
                                  reason="invalid_pending_publisher") from None
        project = await s.get(Project, values["id"])
        assert project is not None
        ids = immutable_ids(row.kind, claims)
        publisher = Publisher(project_id=project.id, created_at=self.clock.now(), created_by=row.created_by,
                              bound_repository_id=ids[0] if ids else "", bound_owner_id=ids[1] if ids else "",
                              **spec_columns(spec_of(row)))
        s.add(publisher)
        await s.execute(delete(PendingPublisher).where(PendingPublisher.id == row.id))
        await s.flush()
        view = publisher_view(publisher, project.name)
        await self.events.emit(s, "project:publisher:add", actor=actor, project=(project.id, project.name),
                               origin=origin, details={**publisher_details(view), "from_pending": row.id})
        await self.events.emit(s, "account:pending_publisher:converted", actor=actor, user=(user.id, user.username),
                               project=(project.id, project.name), origin=origin,
                               details={**publisher_details(view), "pending_publisher_id": row.id})
        return _Match(publisher, project, None)


def _binding(publisher: Publisher, claims: Mapping[str, Any]) -> tuple[str | None, tuple[str, str] | None]:
    """(why the ids refuse it, None) or (None, the ids to bind on first use, or None to bind nothing)."""
    ids = immutable_ids(publisher.kind, claims)
    if ids is None:
        return None, None
    if not all(ids):
        if publisher.kind == "forgejo":  # older Forgejo and Gitea tokens carry no ids: nothing to bind
            return None, None
        return "the token has no repository and owner ids", None
    if not publisher.bound_repository_id:
        return None, ids
    if (publisher.bound_repository_id, publisher.bound_owner_id) != ids:
        return ("the repository (or its owner) is not the one this publisher first published from: it was "
                "deleted and re-created, or renamed; an Owner must remove and add the publisher again"), None
    return None, None


def _missing_claims(kind: str) -> str:
    needed = {"github": "repository", "forgejo": "repository", "gitlab": "project_path", "google": "email"}
    claim = needed.get(kind, "the claims its issuer names")
    return f"The identity token lacks {claim}, so it cannot match any trusted publisher."
