"""The gateway's one reading of a failed call to authsvc or auditsvc: what the edge shows for it.

A refusal crosses gRPC as a status code, a message written for people, and a machine-readable
reason in the status details (`google.rpc.ErrorInfo`, see `gatehouse.infra.rpcstatus`). Here, and
only here, the code gives the HTTP status for each kind of caller (the pages, twine's upload, token
reads of the index and the API), and the reason gives the form field a page ties the message to.
Nothing here looks at the message text: it is passed on, on one line, for twine's reason phrase
and the page. A status that is not a refusal (UNAVAILABLE, INTERNAL, a deadline…) is a 503.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Collection

import grpc

from gatehouse.infra.rpcstatus import ErrorStatus


class Surface(enum.IntEnum):
    """Who asked: the column of `_HTTP` that applies."""

    PAGE = 0    # the account pages (a form, a session cookie)
    UPLOAD = 1  # twine's upload: any refusal of the token or the project is a 403, as on PyPI
    READ = 2    # index reads and API calls with a token (401 with a Basic challenge for a bad token)


UNAVAILABLE = 503

# gRPC status code -> HTTP status for (PAGE, UPLOAD, READ). A code not listed is UNAVAILABLE.
_HTTP: dict[grpc.StatusCode, tuple[int, int, int]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, 400, 400),
    grpc.StatusCode.OUT_OF_RANGE: (400, UNAVAILABLE, UNAVAILABLE),
    grpc.StatusCode.ALREADY_EXISTS: (409, UNAVAILABLE, UNAVAILABLE),
    grpc.StatusCode.FAILED_PRECONDITION: (409, 403, 403),
    grpc.StatusCode.PERMISSION_DENIED: (403, 403, 403),
    grpc.StatusCode.NOT_FOUND: (404, 403, 404),
    grpc.StatusCode.UNAUTHENTICATED: (401, 403, 401),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, 429, 429),
}

# Reason -> the form fields that show it, in order of preference: a page names the fields its form
# has and the first of these that it has gets the message (none: the message is for the whole form).
_FIELDS: dict[str, tuple[str, ...]] = {
    # accounts: registration, login, email, passwords
    "USERNAME_MISSING": ("username",),
    "USERNAME_TOO_LONG": ("username",),
    "USERNAME_INVALID": ("username",),
    "USERNAME_TAKEN": ("username",),
    "ACCOUNT_TAKEN": ("username",),
    "LOGIN_MISSING": ("username", "username_or_email"),
    "EMAIL_MISSING": ("email",),
    "EMAIL_INVALID": ("email",),
    "EMAIL_TAKEN": ("email",),
    "EMAIL_NOT_FOUND": ("email",),
    "NAME_TOO_LONG": ("name",),
    "NAME_INVALID": ("name",),
    "PASSWORD_MISSING": ("password", "current_password"),
    "WRONG_PASSWORD": ("current_password", "password"),
    "PASSWORD_TOO_SHORT": ("new_password", "password"),
    "PASSWORD_TOO_LONG": ("new_password", "password"),
    "PASSWORD_COMMON": ("new_password", "password"),
    "PASSWORD_IS_USERNAME": ("new_password", "password"),
    "PASSWORD_IS_EMAIL": ("new_password", "password"),
    # API tokens
    "DESCRIPTION_MISSING": ("description",),
    "DESCRIPTION_TOO_LONG": ("description",),
    "DESCRIPTION_INVALID": ("description",),
    "DESCRIPTION_TAKEN": ("description",),
    "EXPIRY_IN_PAST": ("expires",),
    "EXPIRY_TOO_FAR": ("expires",),
    "NETWORK_INVALID": ("networks",),
    "NETWORKS_TOO_MANY": ("networks",),
    "VERSION_INVALID": ("release_version",),
    "SCOPE_INVALID": ("scope",),
    "SCOPE_TOO_LARGE": ("scope",),
    "PROJECT_NOT_FOUND": ("projects",),
    "NO_ROLE": ("projects",),
    # project roles
    "USER_NOT_FOUND": ("username",),
    "ROLE_EXISTS": ("username",),
    "ROLE_NOT_FOUND": ("username",),
    "LAST_OWNER": ("username",),
    "ROLE_INVALID": ("role",),
    # security keys
    "LABEL_MISSING": ("label",),
    "LABEL_INVALID": ("label",),
    "LABEL_TAKEN": ("label",),
    "KEY_REGISTERED": ("label",),
    # trusted publishers (the project page's and the projects page's forms)
    "ISSUER_UNKNOWN": ("issuer",),
    "PUBLISHER_CLAIMS_INVALID": ("claims",),
    "PUBLISHER_EXISTS": ("repository", "email", "claims"),
    "PENDING_PUBLISHER_EXISTS": ("project_name",),
    "PROJECT_EXISTS": ("project_name",),
    "PROJECT_NAME_MISSING": ("project_name",),
    "PROJECT_NAME_INVALID": ("project_name",),
    # the audit log's filters
    "BAD_WINDOW": ("until",),
}

# The reason authsvc gives when a sensitive change needs the password confirmed first.
REAUTH_REQUIRED = "REAUTH_REQUIRED"


@dataclasses.dataclass(frozen=True)
class Refusal:
    """A failed call as the gateway shows it: `http_status` for the surface that asked, the
    service's message on one line ("" when it gave none), its reason and its wait."""

    code: grpc.StatusCode
    reason: str
    message: str
    http_status: int
    retry_after: int | None

    @classmethod
    def of(cls, err: grpc.aio.AioRpcError, surface: Surface) -> Refusal:
        status = ErrorStatus.of_rpc(err)
        http = _HTTP.get(status.code, (UNAVAILABLE,) * len(Surface))[surface]
        return cls(code=status.code, reason=status.reason, message=" ".join(status.message.split()),
                   http_status=http, retry_after=status.retry_after if http == 429 else None)

    @property
    def unavailable(self) -> bool:
        """Not a refusal: the service failed or did not answer."""
        return self.http_status == UNAVAILABLE

    @property
    def label(self) -> str:
        """The reason as a metrics label and log field ("not_in_scope"), or `grpc_<code>` without one."""
        return self.reason.lower() if self.reason else f"grpc_{self.code.name.lower()}"

    def field(self, fields: Collection[str]) -> str:
        """The form field, of those a page's form has, that shows this refusal ("" for the form)."""
        return next((name for name in _FIELDS.get(self.reason, ()) if name in fields), "")
