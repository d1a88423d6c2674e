"""API tokens: create (secret shown once), list, delete (the domain layer; no protobuf here)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authsvc.accounts.models import User
from authsvc.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from authsvc.notices import Notifier
from authsvc.projects import phishing
from authsvc.projects.models import Project, Role
from authsvc.projects.names import check_project_name
from authsvc.tokens.caveats import (
    Caveat,
    CaveatError,
    ClientNetworks,
    Expiry,
    Projects,
    ReleaseVersion,
    UserBound,
    normalize_version,
)
from authsvc.tokens.codec import TokenCodec
from authsvc.tokens.models import ApiToken, ApiTokenProject
from authsvc.tokens.revocation import delete_token, emit_token_events, scope_text
from authsvc.twofactor.policy import TwoFactorPolicy
from gatehouse.infra.clock import Clock, as_utc
from gatehouse.infra.outbox import ActorRef, EventEmitter, Origin

MAX_DESCRIPTION = 100
MAX_SCOPED_PROJECTS = 50
MAX_NETWORKS = 20


@dataclasses.dataclass(frozen=True)
class TokenLifetime:
    """Every token expires: `default` when its creator chose no date, never later than `maximum`."""

    default: dt.timedelta = dt.timedelta(days=90)
    maximum: dt.timedelta = dt.timedelta(days=365)

    def expiry(self, chosen: dt.datetime | None, now: dt.datetime) -> dt.datetime:
        if chosen is None:
            return (now + self.default).replace(microsecond=0)
        expires = as_utc(chosen).replace(microsecond=0)
        if int(expires.timestamp()) <= int(now.timestamp()):
            raise InvalidArgument("The expiry date must be in the future.", reason="expiry_in_past")
        if expires > now + self.maximum:
            raise InvalidArgument(f"A token can be valid for at most {self.maximum.days} days on this index: "
                                  f"choose an expiry before {(now + self.maximum):%Y-%m-%d}.",
                                  reason="expiry_too_far")
        return expires


@dataclasses.dataclass(frozen=True)
class TokenView:
    """What may be shown about a token after creation: never its secret."""

    id: str
    description: str
    all_projects: bool
    project_names: tuple[str, ...]
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    expires_at: dt.datetime | None
    username: str
    networks: tuple[str, ...] = ()
    release_version: str = ""

    @classmethod
    def of(cls, token: ApiToken, username: str) -> "TokenView":
        return cls(id=token.id, description=token.description, all_projects=token.scope_all_projects,
                   project_names=tuple(sorted(p.project_name for p in token.projects)),
                   created_at=as_utc(token.created_at), last_used_at=as_utc(token.last_used_at),
                   expires_at=as_utc(token.expires_at), username=username,
                   networks=tuple(n for n in (token.allowed_networks or "").split(",") if n),
                   release_version=token.release_version or "")


def check_description(description: str) -> str:
    description = (description or "").strip()
    if not description:
        raise InvalidArgument("Enter a description for the token (what it is for).", reason="description_missing")
    if len(description) > MAX_DESCRIPTION:
        raise InvalidArgument(f"The description is too long: at most {MAX_DESCRIPTION} characters.",
                              reason="description_too_long")
    if not description.isprintable():
        raise InvalidArgument("The description must not contain control characters.", reason="description_invalid")
    return description


class TokensService:
    def __init__(self, *, db: async_sessionmaker[AsyncSession], clock: Clock, events: EventEmitter,
                 codec: TokenCodec, policy: TwoFactorPolicy | None = None, lifetime: TokenLifetime | None = None,
                 notifier: Notifier | None = None) -> None:
        self.db = db
        self.clock = clock
        self.events = events
        self.codec = codec
        self.policy = policy
        self.lifetime = lifetime or TokenLifetime()
        self.notifier = notifier

    async def create_token(self, user: User, description: str, *, all_projects: bool,
                           project_names: list[str] | tuple[str, ...] = (), expires_at: dt.datetime | None = None,
                           networks: Sequence[str] = (), release_version: str = "",
                           actor: ActorRef, origin: Origin | None = None,
                           auth_method: str | None = None) -> tuple[str, TokenView]:
        """Mint a token for `user`; returns (the secret, shown this once; its listing). Optional
        restrictions: the client networks it may be used from, the one release version it may upload.
        `auth_method`: how the asking session logged in (None for an operator's mint): a token
        that can reach a "phishing-resistant only" project needs a security-key or passkey login."""
        description = check_description(description)
        restrictions = Restrictions.parse(networks, release_version)
        now = self.clock.now()
        if all_projects == bool(project_names):
            raise InvalidArgument("Choose the token's scope: the whole account, or one or more projects.",
                                  reason="scope_invalid")
        if len(project_names) > MAX_SCOPED_PROJECTS:
            raise InvalidArgument(f"A token can be scoped to at most {MAX_SCOPED_PROJECTS} projects.",
                                  reason="scope_too_large")
        normalized = list(dict.fromkeys(check_project_name(n) for n in project_names))
        expires = self.lifetime.expiry(expires_at, now)
        async with self.db() as s, s.begin():
            owner = await s.get(User, user.id)
            if owner is None or not owner.is_active:
                raise FailedPrecondition("This account is disabled: it cannot have API tokens.",
                                         reason="account_disabled")
            primary = next((e for e in owner.emails if e.primary), None)
            if primary is None or not primary.verified:
                raise FailedPrecondition("Verify your primary email address before creating an API token.",
                                         reason="email_unverified")
            if self.policy is not None:
                await self.policy.check_token_creation(s, owner.id)
            taken = await s.scalar(select(ApiToken.id).where(ApiToken.user_id == owner.id,
                                                             ApiToken.description == description))
            if taken:
                raise AlreadyExists(f"You already have a token named '{description}': choose another description.",
                                    reason="description_taken")
            scoped = [await self._scoped_project(s, owner, name) for name in normalized]
            if auth_method is not None:
                await phishing.require_for_token(s, owner.id, auth_method, all_projects=all_projects,
                                                 project_ids=[p.id for p in scoped])
            token = ApiToken(user_id=owner.id, description=description, key_version=self.codec.current_version,
                             scope_all_projects=all_projects, created_at=now, expires_at=expires,
                             allowed_networks=",".join(restrictions.networks),
                             release_version=restrictions.version,
                             projects=[ApiTokenProject(project_id=p.id, project_name=p.name) for p in scoped])
            s.add(token)
            try:
                await s.flush()
            except IntegrityError:
                raise AlreadyExists(f"You already have a token named '{description}': choose another description.",
                                    reason="description_taken") from None
            caveats: list[Caveat] = [UserBound(owner.id)]
            if scoped:
                caveats.append(Projects(tuple(p.normalized_name for p in scoped), tuple(p.id for p in scoped)))
            caveats.append(Expiry(int(now.timestamp()), int(expires.timestamp())))
            secret = self.codec.mint(token.id, [*caveats, *restrictions.caveats()])
            await emit_token_events(s, self.events, "added", token, (owner.id, owner.username),
                                    actor=actor, origin=origin)
            view = TokenView.of(token, owner.username)
            scope = scope_text(token)
        if self.notifier is not None:
            self.notifier.send_later([self.notifier.token_created(
                to=primary.address, username=owner.username, description=description, scope=scope,
                expires_at=expires)], purpose="token_created", user_id=owner.id)
        return secret, view

    async def _scoped_project(self, s: AsyncSession, owner: User, normalized: str) -> Project:
        project = await s.scalar(select(Project).where(Project.normalized_name == normalized))
        if project is None:
            raise NotFound(f"There is no project named '{normalized}': a token can only be scoped to an "
                           "existing project.", reason="project_not_found")
        role = await s.scalar(select(Role.role_name).where(Role.project_id == project.id, Role.user_id == owner.id))
        if role is None:
            raise PermissionDenied(f"'{owner.username}' has no role on project '{project.name}', so a token "
                                   "cannot be scoped to it.", reason="no_role")
        return project

    async def list_tokens(self, user_id: str) -> list[TokenView]:
        async with self.db() as s:
            rows = await s.execute(select(ApiToken, User.username).join(User, User.id == ApiToken.user_id)
                                   .where(ApiToken.user_id == user_id)
                                   .order_by(ApiToken.created_at, ApiToken.description))
            return [TokenView.of(t, u) for t, u in rows]

    async def delete_token(self, token_id: str, *, owner_id: str | None, actor: ActorRef,
                           origin: Origin | None = None) -> TokenView:
        """Delete a token of `owner_id` (None: any user's, for operators). Another user's token
        is reported as not found, so its existence is not revealed."""
        async with self.db() as s, s.begin():
            query = select(ApiToken, User.username).join(User, User.id == ApiToken.user_id).where(
                ApiToken.id == (token_id or "")[:64])
            if owner_id is not None:
                query = query.where(ApiToken.user_id == owner_id)
            row = (await s.execute(query)).first()
            if row is None:
                raise NotFound(f"There is no API token with id '{(token_id or '')[:64]}'"
                               f"{' on your account' if owner_id else ''}.", reason="token_not_found")
            token, username = row
            view = TokenView.of(token, username)
            if not await delete_token(s, self.events, token, (token.user_id, username), actor=actor, origin=origin,
                                      reason="" if owner_id else "operator"):
                raise NotFound("This API token was just revoked by another request.", reason="token_not_found")
            return view


@dataclasses.dataclass(frozen=True)
class Restrictions:
    """What a creator may narrow a token to, signed into it as caveats and kept on its row for listing."""

    networks: tuple[str, ...] = ()
    version: str = ""

    @classmethod
    def parse(cls, networks: Sequence[str], release_version: str) -> "Restrictions":
        """From what the creator typed, or InvalidArgument naming the bad entry."""
        texts = [n.strip() for n in networks if n.strip()]
        if len(texts) > MAX_NETWORKS:
            raise InvalidArgument(f"A token can be limited to at most {MAX_NETWORKS} IP networks.",
                                  reason="networks_too_many")
        canonical = []
        for text in texts:
            try:
                if "%" in text:  # an IPv6 zone id names an interface of one host, not a network
                    raise ValueError(text)
                canonical.append(str(ipaddress.ip_network(text, strict=True)))
            except ValueError:
                raise InvalidArgument(f"'{text[:60]}' is not an IP address or network (write 192.0.2.0/24 or "
                                      "2001:db8::/32, with no host bits set after the prefix).",
                                      reason="network_invalid") from None
        version = release_version.strip()
        try:
            normal = normalize_version(version[:100]) if version else ""
        except CaveatError:
            raise InvalidArgument(f"'{version[:60]}' is not a release version (PEP 440, for example 1.4.2, "
                                  "with no local part).", reason="version_invalid") from None
        return cls(tuple(dict.fromkeys(canonical)), normal)

    def caveats(self) -> list[Caveat]:
        return [*([ClientNetworks(self.networks)] if self.networks else []),
                *([ReleaseVersion(self.version)] if self.version else [])]
