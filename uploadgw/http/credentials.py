"""Reading the API token from the Authorization header (before any of the body is read).

Accepted: HTTP Basic with the username `__token__` and the token as password (what twine and
pip send), or `Authorization: token <t>` / `Bearer <t>`. The token is only passed on to authsvc.
"""

from __future__ import annotations

import base64
import binascii

from uploadgw.errors import AuthenticationRequired, Forbidden

TOKEN_USERNAME = "__token__"

MISSING_UPLOAD = ("Invalid or non-existent authentication information. Upload with an API token: "
                  "username __token__ and the token as the password.")
NOT_A_TOKEN = ("Username/password authentication is not supported. Use an API token instead: set the "
               "username to __token__ and the password to the token (twine: -u __token__ -p <token>, or "
               "TWINE_USERNAME=__token__ TWINE_PASSWORD=<token>).")
MISSING_READ = ("This index is private: authenticate with an API token (username __token__, the token as "
                "the password), for example in the index URL or in .netrc.")


class _Shape(Exception):
    def __init__(self, what: str):
        self.what = what


def _parse(header: str | None) -> str | None:
    """The token, None when there is no header; _Shape('username'|'malformed') otherwise."""
    if header is None or not header.strip():
        return None
    scheme, _, rest = header.strip().partition(" ")
    scheme = scheme.lower()
    rest = rest.strip()
    if scheme in ("token", "bearer"):
        if not rest:
            raise _Shape("malformed")
        return rest
    if scheme != "basic":
        raise _Shape("malformed")
    try:
        decoded = base64.b64decode(rest, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _Shape("malformed") from None
    username, sep, password = decoded.partition(":")
    if not sep:
        raise _Shape("malformed")
    if username != TOKEN_USERNAME:
        raise _Shape("username")
    if not password:
        raise _Shape("malformed")
    return password


def upload_token(header: str | None) -> str:
    """The token of an upload request, or a 403 whose message tells the user what to do."""
    try:
        token = _parse(header)
    except _Shape as shape:
        if shape.what == "username":
            raise Forbidden(NOT_A_TOKEN, reason="not_a_token") from None
        raise Forbidden(MISSING_UPLOAD, reason="malformed_credentials") from None
    if token is None:
        raise Forbidden(MISSING_UPLOAD, reason="no_credentials")
    return token


def read_token(header: str | None) -> str:
    """The token of a private-index read, or a 401 challenge (pip then asks its keyring/.netrc)."""
    try:
        token = _parse(header)
    except _Shape as shape:
        if shape.what == "username":
            raise AuthenticationRequired(NOT_A_TOKEN, reason="not_a_token") from None
        raise AuthenticationRequired(MISSING_READ, reason="malformed_credentials") from None
    if token is None:
        raise AuthenticationRequired(MISSING_READ, reason="no_credentials")
    return token
