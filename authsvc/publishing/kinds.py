"""What a publisher of each kind matches in an identity token's claims (no I/O here).

- GitHub (github.com and GHES) and Forgejo/Gitea: `repository` ("owner/name"), the workflow file in
  `workflow_ref` ("owner/name/.github/workflows/<file>@<ref>"; Forgejo also `.forgejo/` and
  `.gitea/`), `environment` when the publisher names one; `pull_request_target` runs are refused
  (they run the base repository's workflow with a fork's code). Binds `repository_id` and
  `repository_owner_id` (Forgejo/Gitea: when its tokens carry them; older ones do not).
- GitLab: `project_path` ("namespace/project"), the CI config path in `ci_config_ref_uri`
  ("<host>/namespace/project//<path>@<ref>"), `environment`. Binds `project_id`, `namespace_id`.
- Google: `email` (with `email_verified`), and `sub` when the publisher names it.
- Custom: every claim the issuer names equals the publisher's value exactly.
Owner, repository and GitHub environment names compare case-insensitively (as the providers treat
them); workflow files and everything else exactly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from authsvc.errors import InvalidArgument
from authsvc.settings import OidcIssuer

MAX_FIELD = 255
WORKFLOW_DIRS = {"github": (".github/workflows",), "forgejo": (".forgejo/workflows", ".gitea/workflows",
                                                              ".github/workflows")}
# The claims that identify a run, recorded with each upload (those the token has).
RUN_CLAIMS = {
    "github": ("repository", "repository_id", "workflow_ref", "ref", "sha", "run_id", "run_attempt",
               "environment", "event_name", "actor"),
    "forgejo": ("repository", "repository_id", "workflow_ref", "ref", "sha", "run_id", "environment",
                "event_name", "actor"),
    "gitlab": ("project_path", "project_id", "ci_config_ref_uri", "ref", "ref_path", "sha", "pipeline_id",
               "job_id", "environment", "user_login"),
    "google": ("email", "sub"),
    "custom": ("sub",),
}
_BIND = {"github": ("repository_id", "repository_owner_id"), "forgejo": ("repository_id", "repository_owner_id"),
         "gitlab": ("project_id", "namespace_id")}


@dataclasses.dataclass(frozen=True)
class Spec:
    """A publisher's matching fields, normalised (see PublisherSpec in publishing.proto)."""

    issuer_url: str
    kind: str
    owner: str = ""
    repository: str = ""
    workflow: str = ""
    environment: str = ""
    email: str = ""
    subject: str = ""
    claims: tuple[tuple[str, str], ...] = ()

    @property
    def lookup(self) -> str:
        """The index key an identity token's claims find this publisher by (`lookup_of`)."""
        if self.kind == "google":
            return self.email.lower()
        if self.kind == "custom":
            return _canonical(dict(self.claims))[:MAX_FIELD]
        return f"{self.owner}/{self.repository}".lower()

    @property
    def key(self) -> str:
        """A digest of the whole spec: one publisher per project per spec."""
        fields = dataclasses.asdict(self)
        for name in ("owner", "repository", "email"):
            fields[name] = fields[name].lower()
        if self.kind in ("github", "forgejo"):
            fields["environment"] = fields["environment"].lower()
        return hashlib.sha256(_canonical(fields).encode()).hexdigest()

    @property
    def claims_json(self) -> str:
        return _canonical(dict(self.claims))

    def display(self) -> str:
        if self.kind == "google":
            return f"Google service account {self.email}" + (f" ({self.subject})" if self.subject else "")
        if self.kind == "custom":
            return f"{self.issuer_url}: " + ", ".join(f"{k}={v}" for k, v in self.claims)
        label = {"github": "GitHub", "gitlab": "GitLab", "forgejo": "Forgejo"}[self.kind]
        what = "CI config" if self.kind == "gitlab" else "workflow"
        text = f"{label} {self.owner}/{self.repository}, {what} {self.workflow}"
        return text + (f", environment {self.environment}" if self.environment else "")


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _field(value: str, label: str, *, required: bool) -> str:
    value = (value or "").strip()
    if required and not value:
        raise InvalidArgument(f"Enter the {label}.", reason="publisher_field_missing")
    if len(value) > MAX_FIELD or not value.isprintable():
        raise InvalidArgument(f"The {label} is too long or contains control characters.",
                              reason="publisher_field_invalid")
    return value


def make_spec(issuer: OidcIssuer, *, owner: str = "", repository: str = "", workflow: str = "",
              environment: str = "", email: str = "", subject: str = "",
              claims: Mapping[str, str] | None = None) -> Spec:
    """A checked Spec for `issuer` from what an Owner entered (InvalidArgument names what is wrong);
    the fields another kind uses must be empty."""
    given = {"owner": owner, "repository": repository, "workflow": workflow, "environment": environment,
             "email": email, "subject": subject}
    if issuer.kind in ("github", "forgejo", "gitlab"):
        names = {"github": ("owner", "repository", "workflow file name"),
                 "forgejo": ("owner", "repository", "workflow file name"),
                 "gitlab": ("namespace", "project", "CI config file path")}[issuer.kind]
        used = {"owner", "repository", "workflow", "environment"}
        spec = Spec(issuer.url, issuer.kind, owner=_field(owner, names[0], required=True),
                    repository=_field(repository, names[1], required=True),
                    workflow=_field(workflow, names[2], required=True),
                    environment=_field(environment, "environment", required=False))
        if "/" in spec.repository or (issuer.kind != "gitlab" and "/" in spec.owner):
            raise InvalidArgument("Give the owner and the repository name separately, without '/'.",
                                  reason="publisher_field_invalid")
        if issuer.kind != "gitlab" and ("/" in spec.workflow or not spec.workflow.endswith((".yml", ".yaml"))):
            raise InvalidArgument("Give the workflow's file name only (for example release.yml).",
                                  reason="publisher_field_invalid")
    elif issuer.kind == "google":
        used = {"email", "subject"}
        spec = Spec(issuer.url, issuer.kind, email=_field(email, "service account email", required=True),
                    subject=_field(subject, "subject", required=False))
        if "@" not in spec.email:
            raise InvalidArgument("Enter the service account's email address.", reason="publisher_field_invalid")
    else:
        used = set()
        claims = dict(claims or {})
        if set(claims) != set(issuer.claims):
            raise InvalidArgument(f"Give a value for each of the claims {', '.join(issuer.claims)} (and no other).",
                                  reason="publisher_claims_invalid")
        spec = Spec(issuer.url, issuer.kind, claims=tuple(sorted(
            (name, _field(value, f"claim {name}", required=True)) for name, value in claims.items())))
    if issuer.kind != "custom" and claims:
        raise InvalidArgument("Only publishers of custom issuers take claims.", reason="publisher_claims_invalid")
    unused = [name for name, value in given.items() if value and name not in used]
    if unused:
        raise InvalidArgument(f"A {issuer.kind} publisher has no {', '.join(unused)}.",
                              reason="publisher_field_invalid")
    return spec


def lookup_of(issuer: OidcIssuer, claims: Mapping[str, Any]) -> str | None:
    """The `Spec.lookup` a token's claims would match, or None when the token cannot match any."""
    if issuer.kind in ("github", "forgejo"):
        value = claims.get("repository")
    elif issuer.kind == "gitlab":
        value = claims.get("project_path")
    elif issuer.kind == "google":
        value = claims.get("email")
    else:
        values = {name: claims.get(name) for name in issuer.claims}
        if not all(isinstance(v, str) for v in values.values()):
            return None
        return _canonical(values)[:MAX_FIELD]
    return value.lower() if isinstance(value, str) else None


def mismatch(spec: Spec, claims: Mapping[str, Any]) -> str | None:
    """Why the claims do not match `spec` (a sentence for the CI user), or None when they do."""
    def text(name: str) -> str:
        value = claims.get(name)
        return value if isinstance(value, str) else ""

    if spec.kind in ("github", "forgejo"):
        if text("repository").lower() != f"{spec.owner}/{spec.repository}".lower():
            return "the repository differs"
        if text("event_name") == "pull_request_target":
            return "pull_request_target workflows may not publish (they run code from forks)"
        path, _, ref = text("workflow_ref").partition("@")
        prefix = f"{spec.owner}/{spec.repository}/".lower()
        if not ref or not path.lower().startswith(prefix):
            return "the token has no usable workflow_ref"
        if path[len(prefix):] not in {f"{d}/{spec.workflow}" for d in WORKFLOW_DIRS[spec.kind]}:
            return f"the workflow is not {spec.workflow}"
        if spec.environment and text("environment").lower() != spec.environment.lower():
            return f"the job does not run in environment {spec.environment}"
        return None
    if spec.kind == "gitlab":
        if text("project_path").lower() != f"{spec.owner}/{spec.repository}".lower():
            return "the project differs"
        location, _, ref = text("ci_config_ref_uri").partition("@")
        expected = f"/{spec.owner}/{spec.repository}//{spec.workflow}"
        if not ref or not location.lower().endswith(expected.lower()) or not location.endswith(f"//{spec.workflow}"):
            return f"the CI config file is not {spec.workflow}"
        if spec.environment and text("environment") != spec.environment:
            return f"the job does not run in environment {spec.environment}"
        return None
    if spec.kind == "google":
        if text("email").lower() != spec.email.lower() or claims.get("email_verified") is not True:
            return "the service account email differs or is not verified"
        if spec.subject and text("sub") != spec.subject:
            return "the subject (sub) differs"
        return None
    for name, value in spec.claims:
        if text(name) != value:
            return f"the claim {name} differs"
    return None


def binds_ids(kind: str) -> tuple[str, str] | None:
    """The claims naming the (repository, owner) ids a publisher of `kind` is bound to, or None."""
    return _BIND.get(kind)


def immutable_ids(kind: str, claims: Mapping[str, Any]) -> tuple[str, str] | None:
    """The provider's (repository, owner) ids in the claims, or None for kinds that have none.
    A kind that has them but a token without them gives ("", "")."""
    names = _BIND.get(kind)
    if names is None:
        return None
    repository, owner = (claims.get(name) for name in names)
    return _id_text(repository), _id_text(owner)


def _id_text(value: object) -> str:
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""


def run_claims(kind: str, claims: Mapping[str, Any]) -> dict[str, str]:
    """The claims identifying the run, as text (cut to MAX_FIELD)."""
    out = {}
    for name in RUN_CLAIMS[kind]:
        value = claims.get(name)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            out[name] = "".join(ch for ch in str(value)[:MAX_FIELD] if ch.isprintable())
    return out
