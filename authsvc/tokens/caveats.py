"""Typed, versioned first-party caveats of API tokens, and their fail-closed checks.

A caveat is a JSON object `{"v": 1, "t": <type>, ...}` with exactly the keys its type defines.
Parsing is strict (unknown type or version, missing or extra key, wrong type, duplicate key: the
token fails), and every check returns an explicit `Success` or `Failure(reason)`; a token is
allowed only when every one of its caveats returns `Success`. Caveats only ever narrow what a
token may do: an appended caveat is one more condition that must hold.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from typing import NoReturn

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from authsvc.projects.names import is_project_name

CAVEAT_VERSION = 1
MAX_LIST = 100
MAX_INT = 2**53
_ID_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")


@dataclasses.dataclass(frozen=True, slots=True)
class Success:
    """Every check passed."""

    def __bool__(self) -> bool:
        return True


@dataclasses.dataclass(frozen=True, slots=True)
class Failure:
    """A denial. `reason` is shown to the user; `code` is for metrics. `invalid`: the token is not a
    valid credential at all (UNAUTHENTICATED) rather than valid but not allowed (PERMISSION_DENIED)."""

    reason: str
    code: str
    invalid: bool = False

    def __bool__(self) -> bool:  # a forgotten `if result:` still fails closed
        return False


Result = Success | Failure
SUCCESS = Success()


class Purpose(enum.Enum):
    UPLOAD = "upload"
    INDEX = "index"  # reading a private index: not a project action


@dataclasses.dataclass(frozen=True, slots=True)
class ProjectRef:
    id: str
    normalized_name: str


@dataclasses.dataclass(frozen=True, slots=True)
class Context:
    """What a token is being used for: checked against every caveat."""

    now: dt.datetime
    user_id: str                # the user the token's row belongs to
    purpose: Purpose
    project_name: str = ""      # as requested (shown in messages)
    project: ProjectRef | None = None  # the existing project of that name, None when there is none
    client_ip: str = ""         # the client's address as the gateway established it; "" when not known
    version: str = ""           # the upload's release version (PEP 440), "" before the fields are read

    @property
    def normalized_name(self) -> str:
        return canonicalize_name(self.project_name) if self.project_name else ""


class CaveatError(ValueError):
    """A caveat that cannot be parsed: the token fails."""


def _when(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclasses.dataclass(frozen=True, slots=True)
class Expiry:
    """Valid from `not_before` (inclusive) until `expires_at` (exclusive), Unix seconds."""

    TYPE = "expiry"
    not_before: int
    expires_at: int

    def to_json(self) -> dict[str, object]:
        return {"nbf": self.not_before, "exp": self.expires_at}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> "Expiry":
        nbf, exp = _int(data["nbf"]), _int(data["exp"])
        if exp <= nbf:
            raise CaveatError("expiry before its start")
        return cls(nbf, exp)

    def check(self, ctx: Context) -> Result:
        now = ctx.now.timestamp()
        if now < self.not_before:
            return Failure(f"This token is not valid before {_when(self.not_before)}.", "not_yet_valid")
        if now >= self.expires_at:
            return Failure(f"This token expired at {_when(self.expires_at)}.", "expired")
        return SUCCESS


@dataclasses.dataclass(frozen=True, slots=True)
class Projects:
    """Uploads only to these projects: each a (PEP 503 name, project id) pair, so that a project
    deleted and re-created under the same name is out of scope."""

    TYPE = "projects"
    names: tuple[str, ...]
    ids: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {"names": list(self.names), "ids": list(self.ids)}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> "Projects":
        names, ids = _str_list(data["names"]), _str_list(data["ids"])
        if len(names) != len(ids):
            raise CaveatError("names and ids differ in length")
        for name in names:
            if not is_project_name(name) or canonicalize_name(name) != name:
                raise CaveatError("project name not normalised")
        if not all(_ID_RE.match(i) for i in ids):
            raise CaveatError("bad project id")
        return cls(tuple(names), tuple(ids))

    def check(self, ctx: Context) -> Result:
        if ctx.purpose is Purpose.INDEX:
            return SUCCESS  # the scope limits uploads; any valid token may read a private index
        shown = ctx.project_name
        wanted = ctx.normalized_name
        if ctx.project is not None and (ctx.project.normalized_name, ctx.project.id) in zip(self.names, self.ids):
            return SUCCESS
        if wanted in self.names:
            if ctx.project is None:
                return Failure(f"This token is not valid for project '{shown}': the project it was "
                               "made for has been deleted.", "project_deleted")
            return Failure(f"This token is not valid for project '{shown}': it was made for an earlier "
                           "project of that name, which has been deleted.", "project_recreated")
        return Failure(f"This token is not valid for project '{shown}'.", "not_in_scope")


@dataclasses.dataclass(frozen=True, slots=True)
class UserBound:
    """The token belongs to this user id (checked against the token's stored owner)."""

    TYPE = "user"
    user_id: str

    def to_json(self) -> dict[str, object]:
        return {"id": self.user_id}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> "UserBound":
        value = data["id"]
        if not isinstance(value, str) or not _ID_RE.match(value):
            raise CaveatError("bad user id")
        return cls(value)

    def check(self, ctx: Context) -> Result:
        if ctx.user_id != self.user_id:
            return Failure("This token does not belong to its stored user.", "user_mismatch", invalid=True)
        return SUCCESS


# -- restrictions a holder chooses (the token page offers them; anyone may append them offline) ----


def _network(text: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """One network in its canonical text ("192.0.2.0/24", "2001:db8::/32"; a bare address is /32 or
    /128): anything else, host bits set or another spelling of the same network, fails the token."""
    if type(text) is not str or len(text) > 49 or "%" in text:  # no IPv6 zone ids: they name a host's interface
        raise CaveatError("expected a network")
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError:
        raise CaveatError("bad network") from None
    if str(network) != text:
        raise CaveatError("network not in canonical form")
    return network


@dataclasses.dataclass(frozen=True, slots=True)
class ClientNetworks:
    """Every use of the token must come from one of these networks (IPv4 or IPv6, CIDR), by the client
    address the gateway established. An unknown client address fails (fail closed)."""

    TYPE = "ips"
    networks: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {"nets": list(self.networks)}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> "ClientNetworks":
        nets = _str_list(data["nets"])
        for net in nets:
            _network(net)
        return cls(tuple(nets))

    def check(self, ctx: Context) -> Result:
        allowed = ", ".join(self.networks)
        try:
            address = ipaddress.ip_address(ctx.client_ip)
        except ValueError:
            return Failure(f"This token is restricted to IP addresses {allowed}, and this request's address "
                           "is not known.", "ip_not_allowed")
        if any(address in ipaddress.ip_network(net) for net in self.networks):
            return SUCCESS
        return Failure(f"This token is restricted to IP addresses {allowed}; this request came from "
                       f"{address}.", "ip_not_allowed")


def normalize_version(text: str) -> str:
    """A release version in its PEP 440 normal form, or CaveatError (local versions are never uploaded)."""
    try:
        version = Version(text)
    except InvalidVersion:
        raise CaveatError("not a PEP 440 version") from None
    if version.local is not None:
        raise CaveatError("local versions cannot be uploaded")
    return str(version)


@dataclasses.dataclass(frozen=True, slots=True)
class ReleaseVersion:
    """Uploads only of files of this release: the upload's version must equal it under PEP 440
    (so "1.0" and "1.0.0" are one release, as the index itself treats them). Index reads are not uploads."""

    TYPE = "version"
    version: str

    def to_json(self) -> dict[str, object]:
        return {"version": self.version}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> "ReleaseVersion":
        value = data["version"]
        if type(value) is not str or len(value) > 100 or normalize_version(value) != value:
            raise CaveatError("version not in PEP 440 normal form")
        return cls(value)

    def check(self, ctx: Context) -> Result:
        if ctx.purpose is Purpose.INDEX:
            return SUCCESS
        try:
            matches = Version(ctx.version) == Version(self.version)
        except InvalidVersion:
            matches = False
        if matches:
            return SUCCESS
        return Failure(f"This token is restricted to release version {self.version}; this upload is version "
                       f"'{ctx.version}'.", "version_not_allowed")


@dataclasses.dataclass(frozen=True, slots=True)
class PublisherOnly:
    """Minted by a trusted-publishing exchange (authsvc/publishing): the token belongs to no user,
    its id names a minted-token row, and it may upload and nothing else."""

    TYPE = "publisher"

    def to_json(self) -> dict[str, object]:
        return {}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> "PublisherOnly":
        return cls()

    def check(self, ctx: Context) -> Result:
        return SUCCESS if ctx.purpose is Purpose.UPLOAD else UPLOAD_ONLY


UPLOAD_ONLY = Failure("This token was minted for a trusted publisher: it may only upload.", "publisher_upload_only")
Caveat = Expiry | Projects | UserBound | ClientNetworks | ReleaseVersion | PublisherOnly
_TYPES: dict[str, tuple[type[Caveat], frozenset[str]]] = {
    Expiry.TYPE: (Expiry, frozenset({"v", "t", "nbf", "exp"})),
    Projects.TYPE: (Projects, frozenset({"v", "t", "names", "ids"})),
    UserBound.TYPE: (UserBound, frozenset({"v", "t", "id"})),
    ClientNetworks.TYPE: (ClientNetworks, frozenset({"v", "t", "nets"})),
    ReleaseVersion.TYPE: (ReleaseVersion, frozenset({"v", "t", "version"})),
    PublisherOnly.TYPE: (PublisherOnly, frozenset({"v", "t"})),
}


def _int(value: object) -> int:
    if type(value) is not int or not 0 <= value < MAX_INT:
        raise CaveatError("expected a non-negative integer")
    return value


def _str_list(value: object) -> list[str]:
    if type(value) is not list or not 1 <= len(value) <= MAX_LIST:
        raise CaveatError("expected a non-empty list")
    if not all(type(v) is str for v in value):
        raise CaveatError("expected strings")
    return value


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise CaveatError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constants(name: str) -> NoReturn:
    raise CaveatError(f"{name} is not allowed")


def serialize(caveat: Caveat) -> bytes:
    body = {"v": CAVEAT_VERSION, "t": caveat.TYPE, **caveat.to_json()}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


def parse(raw: bytes) -> Caveat:
    """One caveat from its bytes, or CaveatError: unknown, malformed or ambiguous caveats fail."""
    try:
        text = raw.decode("utf-8")
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except CaveatError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CaveatError("not JSON") from exc
    if type(data) is not dict:
        raise CaveatError("not an object")
    if data.get("v") != CAVEAT_VERSION or type(data.get("v")) is not int:
        raise CaveatError("unknown caveat version")
    kind = data.get("t")
    if type(kind) is not str or kind not in _TYPES:
        raise CaveatError("unknown caveat type")
    cls, keys = _TYPES[kind]
    if set(data) != keys:
        raise CaveatError("unexpected or missing fields")
    return cls.from_json(data)


def parse_all(raw_caveats: Iterable[bytes]) -> tuple[Caveat, ...] | Failure:
    """Every caveat parsed, or a Failure when any one is unknown or malformed."""
    try:
        return tuple(parse(raw) for raw in raw_caveats)
    except CaveatError:
        return Failure("This token contains a restriction that this index does not understand.",
                       "malformed_caveat", invalid=True)


def check_all(caveats: Iterable[Caveat], ctx: Context) -> Result:
    """Check every caveat against `ctx`; the first failure wins. No caveat is ever skipped."""
    for caveat in caveats:
        result = caveat.check(ctx)
        if not isinstance(result, Success):
            return result if isinstance(result, Failure) else Failure("Token check failed.", "internal", True)
    return SUCCESS


def minted_for_publisher(caveats: Iterable[Caveat]) -> bool:
    """Whether the token was minted for a trusted publisher (verified against its minted-token row)."""
    return any(isinstance(caveat, PublisherOnly) for caveat in caveats)


def scoped_projects(caveats: Iterable[Caveat]) -> bool:
    """Whether any caveat limits the projects (a project-scoped token can never create a project)."""
    return any(isinstance(caveat, Projects) for caveat in caveats)
