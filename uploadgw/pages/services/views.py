"""Plain values the templates show, made from the services' protobuf answers (templates never see protobuf)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from gatehouse.auth.v1 import common_pb2

ROLE_NAMES = {common_pb2.ROLE_OWNER: "Owner", common_pb2.ROLE_MAINTAINER: "Maintainer"}
ROLE_VALUES = {"Owner": common_pb2.ROLE_OWNER, "Maintainer": common_pb2.ROLE_MAINTAINER}


def when(message, field: str) -> dt.datetime | None:
    """An optional Timestamp field as an aware UTC datetime (None when unset)."""
    if not message.HasField(field):
        return None
    return getattr(message, field).ToDatetime(tzinfo=dt.timezone.utc)


@dataclasses.dataclass(frozen=True)
class User:
    id: str
    username: str
    name: str
    primary_email: str
    email_verified: bool
    is_admin: bool
    two_factor_enabled: bool

    @classmethod
    def of(cls, pb: common_pb2.User) -> "User":
        return cls(id=pb.id, username=pb.username, name=pb.name, primary_email=pb.primary_email,
                   email_verified=pb.email_verified, is_admin=pb.is_admin,
                   two_factor_enabled=pb.two_factor_enabled)


@dataclasses.dataclass(frozen=True)
class CurrentSession:
    """The signed-in visitor: who, when they last entered their password, and whether authsvc
    wants the password again before a sensitive action (its re-authentication window)."""

    user: User
    authenticated_at: dt.datetime | None
    reauth_required: bool = True


@dataclasses.dataclass(frozen=True)
class Email:
    address: str
    verified: bool
    primary: bool


@dataclasses.dataclass(frozen=True)
class Account:
    user: User
    emails: list[Email]


@dataclasses.dataclass(frozen=True)
class LoginOutcome:
    """A session (login complete) or a pending second step with the methods the user has."""

    session_token: str = ""
    pending_token: str = ""
    methods: tuple[str, ...] = ()
    recovery_codes_remaining: int | None = None
    device_token: str = ""  # set when the password was right: the browser keeps it (cookie)
    held_token: str = ""  # instead of a session: held until the mailed link is followed in this browser


@dataclasses.dataclass(frozen=True)
class SecurityKey:
    id: str
    label: str
    created_at: dt.datetime | None
    last_used_at: dt.datetime | None
    passkey: bool = False  # a discoverable key that verifies its user: it also signs in alone


@dataclasses.dataclass(frozen=True)
class TwoFactorStatus:
    enabled: bool
    totp_created_at: dt.datetime | None
    totp_last_used_at: dt.datetime | None
    keys: list[SecurityKey]
    recovery_codes_remaining: int
    required_by: list[str]

    @property
    def has_totp(self) -> bool:
        return self.totp_created_at is not None


@dataclasses.dataclass(frozen=True)
class TotpSetup:
    secret: str
    provisioning_uri: str
    qr_code_svg: str
    expires_at: dt.datetime | None

    @property
    def secret_groups(self) -> str:
        """The key in groups of four, easier to type into an app."""
        return " ".join(self.secret[i:i + 4] for i in range(0, len(self.secret), 4))


@dataclasses.dataclass(frozen=True)
class Token:
    id: str
    description: str
    all_projects: bool
    project_names: list[str]
    created_at: dt.datetime | None
    last_used_at: dt.datetime | None
    expires_at: dt.datetime | None
    networks: list[str] = dataclasses.field(default_factory=list)
    release_version: str = ""

    @classmethod
    def of(cls, pb: common_pb2.TokenInfo) -> "Token":
        return cls(id=pb.id, description=pb.description, all_projects=pb.scope.all_projects,
                   project_names=list(pb.scope.project_names), created_at=when(pb, "created_at"),
                   last_used_at=when(pb, "last_used_at"), expires_at=when(pb, "expires_at"),
                   networks=list(pb.scope.allowed_networks), release_version=pb.scope.release_version)


@dataclasses.dataclass(frozen=True)
class ProjectToken:
    """A token that can reach a project, as its Owners see it (of its other projects, only how many)."""

    token: Token
    username: str
    reach: str  # "account" (account-wide), "project" (this project only), "projects" (this and others)
    other_projects: int = 0


@dataclasses.dataclass(frozen=True)
class NewToken:
    """A token just created: the secret is shown this once."""

    secret: str
    info: Token


@dataclasses.dataclass(frozen=True)
class Project:
    id: str
    name: str
    normalized_name: str
    created_at: dt.datetime | None
    two_factor_required: bool
    trusted_publishing_only: bool = False
    phishing_resistant_only: bool = False

    @classmethod
    def of(cls, pb: common_pb2.Project) -> "Project":
        return cls(id=pb.id, name=pb.name, normalized_name=pb.normalized_name, created_at=when(pb, "created_at"),
                   two_factor_required=pb.two_factor_required, trusted_publishing_only=pb.trusted_publishing_only,
                   phishing_resistant_only=pb.phishing_resistant_only)


@dataclasses.dataclass(frozen=True)
class MyProject:
    project: Project
    role: str


@dataclasses.dataclass(frozen=True)
class Collaborator:
    username: str
    role: str


@dataclasses.dataclass(frozen=True)
class Access:
    """The signed-in user's standing on a project, as authsvc answered CheckPermission."""

    project: Project
    role: str
    allowed: bool
    reason: str
    reauth_required: bool
    user_id: str
    username: str

    @property
    def is_owner(self) -> bool:
        return self.role == "Owner"


@dataclasses.dataclass(frozen=True)
class FileRow:
    filename: str
    packagetype: str
    size: int
    uploaded_at: dt.datetime | None
    uploader: str


@dataclasses.dataclass(frozen=True)
class ReleaseRow:
    version: str
    yanked: bool
    yanked_reason: str
    created_at: dt.datetime | None
    files: list[FileRow]


@dataclasses.dataclass(frozen=True)
class Event:
    occurred_at: dt.datetime | None
    tag: str
    actor: str
    subject: str
    project: str
    ip_address: str
    ip_hashed: bool
    user_agent: str
    details: list[tuple[str, str]]


@dataclasses.dataclass(frozen=True)
class EventPage:
    events: list[Event]
    next_page: str


@dataclasses.dataclass(frozen=True)
class LogQuery:
    """The full log's filters as the admin typed them (empty: no filter); times in UTC."""

    tag: str = ""
    actor: str = ""
    user: str = ""
    project: str = ""
    ip_address: str = ""
    since: dt.datetime | None = None
    until: dt.datetime | None = None
