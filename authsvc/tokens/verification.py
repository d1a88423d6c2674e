"""Token verification for the gateway: uploads (creating the project on a first upload) and
private-index reads.

The hot path is one parse, one HMAC chain and one query that reads the token, its user, the
primary email, whether the user has a second factor, the project and the user's role on it
together (`lookup`, which keeps its shorter way in); a second statement records the last use at
most once per `last_used_interval` (in the same transaction as the project a first upload
creates). Every other query goes through the service's `Transactions`.
Forged tokens are refused before any query.
Denials: `TokenInvalid` (UNAUTHENTICATED) when the token is not a valid credential at all —
malformed, forged, deleted, retired key, user disabled; `TokenDenied` (PERMISSION_DENIED) when it
is valid but may not do this — out of scope, no role, expired or not yet valid, unverified email,
or a second factor required (site or project policy) and missing.

An upload is checked in two steps. At its headers (`verify_upload_token`) everything the token
alone decides: one of ours, not deleted, its key current, its user active, not expired (caveat and
row), in the one lookup. Once the fields name the project (`verify_upload`), the whole check again
with the project.

A refused upload by an authentic token (its HMAC chain checks out: expired, deleted, out of
scope, …) leaves `project:upload:refused`, naming the token's id and the reason, never the token.
After the fields: in the project's log when the project exists, else in the admin log only. At the
headers, where no project is named yet: in the log of each existing project the token is scoped
to; for an all-projects token (or none of its projects left) in the admin log, with the token's
owner as subject user when the owner still exists (their account log). At most
`REFUSALS_RECORDED` such refusals per token are recorded per window (a flood of refused uploads
with one token cannot flood the logs). Forged or malformed tokens are refused before any query and
leave no event (nothing to flood the log with).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any, NoReturn, Protocol

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from authsvc.accounts.models import User
from authsvc.errors import TokenDenied, TokenInvalid
from authsvc.projects.models import OWNER, Project
from authsvc.projects.names import check_project_name
from authsvc.projects.service import ProjectsService
from authsvc.ratelimit import Limit, RateLimiter
from authsvc.tokens.caveats import (
    UPLOAD_ONLY,
    Caveat,
    Context,
    Failure,
    ProjectRef,
    Projects,
    Purpose,
    ReleaseVersion,
    Success,
    UserBound,
    check_all,
    minted_for_publisher,
    scoped_projects,
)
from authsvc.tokens.codec import AuthenticToken, TokenCodec
from authsvc.tokens.lookup import PostgresLookup, SqliteLookup, TokenRow
from authsvc.tokens.models import ApiToken
from authsvc.twofactor.policy import TwoFactorPolicy
from gatehouse.infra.clock import Clock
from gatehouse.infra.outbox import ANONYMOUS, ActorRef, Origin
from gatehouse.infra.transactions import Transactions

log = logging.getLogger(__name__)
UPLOAD_REFUSED = "project:upload:refused"
# Refusal events per token: 10 a minute, each minute used up in a row doubling the next (to an hour).
REFUSALS_RECORDED = Limit("upload-refused:token", limit=10, window=60, max_window=3600)
_TOUCH = update(ApiToken).where(ApiToken.id == bindparam("tid")).values(last_used_at=bindparam("now"))


@dataclasses.dataclass(frozen=True)
class PublisherGrant:
    """The trusted publisher a token was minted for, and the claims identifying its CI run."""

    id: str
    kind: str
    display: str
    issuer_url: str
    run_claims: dict[str, str]


@dataclasses.dataclass(frozen=True)
class UploadGrant:
    user_id: str   # a publisher's token: the publisher's id
    username: str  # a publisher's token: its display
    project_id: str
    project_name: str
    token_id: str
    project_created: bool
    role: str      # a publisher's token: ""
    publisher: PublisherGrant | None = None


class LongLivedUploads(Protocol):
    """What the project's trusted-publishing settings ask of an upload with a long-lived token (the
    publishing area's, passed in from app.py). Raises TokenDenied to refuse it."""

    def check_upload(self, *, trusted_publishing_only: bool, has_publisher: bool, project_id: str,
                     project_name: str, token_id: str, username: str) -> None: ...


class PublisherUploads(Protocol):
    """Checks tokens minted for trusted publishers (the publishing area's, passed in from app.py,
    so that this package does not import the one above it). Both raise TokenInvalid/TokenDenied."""

    async def check_token(self, token: AuthenticToken) -> None: ...

    async def verify_upload(self, token: AuthenticToken, project_name: str, normalized: str) -> UploadGrant: ...


@dataclasses.dataclass(frozen=True)
class IndexGrant:
    user_id: str
    username: str
    token_id: str


def raise_failure(failure: Failure) -> NoReturn:
    """A failed check as the error the gRPC adapter maps: TokenInvalid or TokenDenied."""
    raise (TokenInvalid if failure.invalid else TokenDenied)(failure.reason, reason=failure.code)


class TokenVerifier:
    def __init__(self, *, tx: Transactions, lookup: PostgresLookup | SqliteLookup, clock: Clock, codec: TokenCodec,
                 projects: ProjectsService, allow_project_creation: bool, last_used_interval: dt.timedelta,
                 policy: TwoFactorPolicy | None = None, limiter: RateLimiter | None = None,
                 publisher_uploads: PublisherUploads | None = None, long_lived: LongLivedUploads | None = None):
        self.tx = tx  # every query but the lookup
        self.lookup = lookup  # the hot read (see lookup.py for why it keeps its own way)
        self.clock = clock
        self.codec = codec
        self.projects = projects
        self.allow_project_creation = allow_project_creation
        self.last_used_interval = last_used_interval
        self.policy = policy
        self.limiter = limiter or RateLimiter(clock)  # only rates the refusal events
        self.publisher_uploads = publisher_uploads
        self.long_lived = long_lived

    def _publisher_uploads(self) -> PublisherUploads:
        if self.publisher_uploads is None:
            raise TokenInvalid("This index does not accept trusted publishers' tokens.", reason="publisher_disabled")
        return self.publisher_uploads

    def _authentic(self, token: str) -> AuthenticToken:
        authentic = self.codec.authenticate(token)
        if isinstance(authentic, Failure):
            raise_failure(authentic)
        return authentic

    async def _lookup(self, token: AuthenticToken, normalized: str) -> TokenRow:
        row = await self.lookup.fetch(token.token_id, normalized)
        if row is None:
            raise TokenInvalid("This API token has been deleted.", reason="token_deleted")
        if row.key_version != token.key_version:
            raise TokenInvalid("This is not a valid API token.", reason="key_version_mismatch")
        if not row.is_active:
            raise TokenInvalid("The account that owns this API token is disabled.", reason="account_disabled")
        return row

    def _check(self, caveats: tuple[Caveat, ...], row: TokenRow, now: dt.datetime, ctx: Context) -> None:
        result = check_all(caveats, ctx)
        if not isinstance(result, Success):
            raise_failure(result)
        # Expiry is checked twice on purpose. The caveat is signed into the token and checked with
        # no database (as `TokenCodec.verify` and the property tests do; a holder may append a
        # shorter one). The row is the server's own record of the lifetime it granted, so the
        # token still expires if its caveats were ever minted or parsed wrong: neither check
        # relies on the other (defence in depth, as for key_version and the deleted row).
        expires = row.expires_at
        if expires is None:  # every token has one (the column is NOT NULL): a row without fails closed
            raise TokenDenied("This token has no expiry date: create a new token.", reason="expiry_missing")
        if now >= expires:
            raise TokenDenied(f"This token expired at {expires:%Y-%m-%d %H:%M:%S} UTC.", reason="expired")

    async def verify_upload_token(self, token: str, origin: Origin | None = None) -> AuthenticToken:
        """An upload's token step, what its headers alone can prove, in the one lookup: the token is
        one of ours, not deleted, of an active user, not expired (else TokenInvalid/TokenDenied,
        and the refusal's event for an authentic token). Records no use; never an authorisation:
        `verify_upload` decides once the project is known (scope, role, email, second factor)."""
        authentic = self._authentic(token)
        if minted_for_publisher(authentic.caveats):
            await self._publisher_uploads().check_token(authentic)
            return authentic
        now = self.clock.now()
        row: TokenRow | None = None
        try:
            row = await self._lookup(authentic, "")
            # Every caveat but the project scope and the release version, which need the fields.
            unscoped = tuple(c for c in authentic.caveats if not isinstance(c, (Projects, ReleaseVersion)))
            self._check(unscoped, row, now, Context(now=now, user_id=row.user_id, purpose=Purpose.UPLOAD,
                                                    client_ip=origin.ip_address if origin else ""))
        except (TokenInvalid, TokenDenied) as refusal:
            await self._record_header_refusal(authentic, row, refusal, origin)
            raise
        return authentic

    async def verify_upload(self, token: str, project_name: str, origin: Origin | None = None,
                            version: str = "") -> UploadGrant:
        """May this token upload `version` of `project_name`? Creates the project on a first upload by an
        all-projects token when creation is allowed; records the token's last use."""
        authentic = self._authentic(token)
        normalized = check_project_name(project_name)
        if minted_for_publisher(authentic.caveats):
            return await self._publisher_uploads().verify_upload(authentic, project_name, normalized)
        try:
            return await self._verify_upload(authentic, project_name, normalized, origin, version)
        except (TokenInvalid, TokenDenied) as refusal:
            await self._record_refusal(authentic, normalized, refusal, origin)
            raise

    async def _verify_upload(self, authentic: AuthenticToken, project_name: str, normalized: str,
                             origin: Origin | None, version: str) -> UploadGrant:
        now = self.clock.now()
        row = await self._lookup(authentic, normalized)
        project = ProjectRef(row.project_id, normalized) if row.project_id else None
        self._check(authentic.caveats, row, now, Context(now=now, user_id=row.user_id, purpose=Purpose.UPLOAD,
                                                         project_name=project_name, project=project,
                                                         client_ip=origin.ip_address if origin else "",
                                                         version=version))
        if not row.verified:
            raise TokenDenied("The account that owns this token has no verified primary email address: "
                              "verify it, then upload again.", reason="email_unverified")
        created = False
        if project is None:
            if not row.scope_all_projects or scoped_projects(authentic.caveats):
                raise TokenDenied(f"This token is not valid for project '{project_name}'.", reason="not_in_scope")
            if not self.allow_project_creation:
                raise TokenDenied(f"The project '{project_name}' does not exist, and new projects cannot be "
                                  "created on this index.", reason="project_creation_disabled")
            self._check_policy(row, project_name, project_requires=False)  # before creating anything
            made = await self._create_project(project_name, row, authentic.token_id, origin, now)
            created = made is not None
            if made is not None:  # what the lookup would now read: the new project, with this user as its Owner
                row = dataclasses.replace(row, project_id=made["id"], project_name=made["name"], role_name=OWNER,
                                          project_two_factor_required=False, project_trusted_publishing_only=False,
                                          project_has_publisher=False)
            else:  # another upload created it first: read what it made
                row = await self._lookup(authentic, normalized)
        # Both set when the project exists (always, unless it was deleted after this upload created it).
        project_id, found_name = row.project_id, row.project_name
        if project_id is None or found_name is None:
            raise TokenDenied(f"The project '{project_name}' was deleted while uploading; try again.",
                              reason="project_gone")
        if row.role_name is None:
            raise TokenDenied(f"The token's user '{row.username}' has no Owner or Maintainer role on "
                              f"project '{row.project_name}'.", reason="no_role")
        if not created:  # a project this upload created was checked above, before creating it
            self._check_policy(row, found_name, project_requires=row.project_two_factor_required)
            if self.long_lived is not None:
                self.long_lived.check_upload(trusted_publishing_only=row.project_trusted_publishing_only,
                                             has_publisher=row.project_has_publisher, project_id=project_id,
                                             project_name=found_name, token_id=authentic.token_id,
                                             username=row.username)
        token_id = authentic.token_id
        if not created:  # a project this upload created recorded the token's use in its own transaction
            await self._touch(token_id, row.last_used_at, now)
        return UploadGrant(user_id=row.user_id, username=row.username, project_id=project_id,
                           project_name=found_name, token_id=token_id,
                           project_created=created, role=row.role_name)

    async def _record_refusal(self, token: AuthenticToken, normalized: str, refusal: TokenInvalid | TokenDenied,
                              origin: Origin | None) -> None:
        """The refusal's event after the fields: the project's log when it exists, else the admin log."""
        def record(s: Session) -> None:
            if not self._may_record(s, token, refusal):
                return
            project = s.execute(select(Project.id, Project.name).where(Project.normalized_name == normalized)).first()
            self.projects.events.emit_sync(
                s, UPLOAD_REFUSED, actor=ANONYMOUS, project=(project[0], project[1]) if project else None,
                origin=origin, details={"token_id": token.token_id, "reason": refusal.reason,
                                        "project_name": normalized})

        await self._run_record(record, token, refusal)

    async def _record_header_refusal(self, token: AuthenticToken, row: TokenRow | None,
                                     refusal: TokenInvalid | TokenDenied, origin: Origin | None) -> None:
        """The refusal's event at the headers (see the module docstring for where it lands). The
        scope and owner come from the row, else (a deleted token) from the signed caveats: the
        server mints `UserBound` first, and `Projects` caveats only narrow (their intersection)."""
        scoped = scoped_projects(token.caveats) or (row is not None and not row.scope_all_projects)
        ids: set[str] | None = None
        for caveat in token.caveats:
            if isinstance(caveat, Projects):
                ids = set(caveat.ids) if ids is None else ids & set(caveat.ids)
        owner = row.user_id if row is not None else (
            token.caveats[0].user_id if token.caveats and isinstance(token.caveats[0], UserBound) else None)
        details = {"token_id": token.token_id, "reason": refusal.reason, "step": "headers"}

        def record(s: Session) -> None:
            if not self._may_record(s, token, refusal):
                return
            emit = self.projects.events.emit_sync
            if scoped:
                projects = s.execute(select(Project.id, Project.name).where(Project.id.in_(sorted(ids or ())))).all()
                for project_id, name in projects:
                    emit(s, UPLOAD_REFUSED, actor=ANONYMOUS, project=(project_id, name), origin=origin,
                         details=details)
                if projects:
                    return
            user = None
            if not scoped and owner is not None:
                username = row.username if row is not None else s.scalar(select(User.username).where(User.id == owner))
                user = (owner, username) if username is not None else None
            emit(s, UPLOAD_REFUSED, actor=ANONYMOUS, user=user, origin=origin, details=details)

        await self._run_record(record, token, refusal)

    def _may_record(self, s: Session, token: AuthenticToken, refusal: TokenInvalid | TokenDenied) -> bool:
        """Whether this token's refusal may still be recorded in this window (one atomic step)."""
        if self.limiter.acquire_sync(s, [(REFUSALS_RECORDED, token.token_id)]).refused is None:
            return True
        log.info("refused upload not recorded: too many for this token",
                 extra={"token_id": token.token_id, "reason": refusal.reason})
        return False

    async def _run_record(self, record: Callable[[Session], None], token: AuthenticToken,
                          refusal: TokenInvalid | TokenDenied) -> None:
        """Run a refusal's event in authsvc's outbox, its own transaction (nothing else changed).
        If the database fails here the upload is refused all the same."""
        try:
            await self.tx.run(record)
        except SQLAlchemyError as exc:
            log.warning("refused upload not recorded", extra={"token_id": token.token_id, "reason": refusal.reason,
                                                              "error": type(exc).__name__})

    def _check_policy(self, row: TokenRow, project_name: str, *, project_requires: bool) -> None:
        """The two-factor policy (site-wide or the project's), on what the lookup read."""
        if self.policy is not None:
            self.policy.check_upload(has_second_factor=row.has_second_factor, username=row.username,
                                     project_name=project_name, project_requires=project_requires)

    async def verify_index(self, token: str, origin: Origin | None = None) -> IndexGrant:
        """A valid, undeleted, unexpired token of an active user may read a private index (from the
        networks it is restricted to, if any)."""
        authentic = self._authentic(token)
        now = self.clock.now()
        if minted_for_publisher(authentic.caveats):  # before the lookup: no user's token row to find
            raise_failure(UPLOAD_ONLY)
        row = await self._lookup(authentic, "")
        self._check(authentic.caveats, row, now, Context(now=now, user_id=row.user_id, purpose=Purpose.INDEX,
                                                         client_ip=origin.ip_address if origin else ""))
        token_id = authentic.token_id
        await self._touch(token_id, row.last_used_at, now)
        return IndexGrant(user_id=row.user_id, username=row.username, token_id=token_id)

    async def _create_project(self, name: str, row: TokenRow, token_id: str, origin: Origin | None,
                              now: dt.datetime) -> dict[str, Any] | None:
        """Create the project with the uploader as Owner (its row's values) and, when due, record the
        token's use in the same transaction (one commit). Two racing first uploads: the unique name
        lets exactly one commit; the other gets None (nothing of it written) and reads what the
        winner made."""
        user = (row.user_id, row.username)
        touch = self._touch_due(row.last_used_at, now)

        def create(conn: Connection) -> dict[str, Any]:
            made = self.projects.create_with_owner(conn, name, user, actor=ActorRef.user(*user), origin=origin)
            if touch:
                conn.execute(_TOUCH, {"tid": token_id, "now": now})
            return made

        try:  # one synchronous transaction (on SQLite on the event loop, see Transactions)
            return await self.tx.run_sql(create)
        except IntegrityError:
            return None

    async def close(self) -> None:
        await self.lookup.close()

    def _touch_due(self, last_used: dt.datetime | None, now: dt.datetime) -> bool:
        """Whether a use now is recorded: at most once per `last_used_interval`."""
        return last_used is None or abs(now - last_used) >= self.last_used_interval

    async def _touch(self, token_id: str, last_used: dt.datetime | None, now: dt.datetime) -> None:
        if self._touch_due(last_used, now):
            await self.tx.run_sql(lambda conn: conn.execute(_TOUCH, {"tid": token_id, "now": now}))
