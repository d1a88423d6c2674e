"""Input rules for account names and addresses, and the stored form of high-entropy secrets."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid

from authsvc.errors import InvalidArgument

# PyPI's rule: ASCII letters and digits, with '.', '_' and '-' inside; at most 50 characters.
USERNAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,48}[A-Za-z0-9])?")
EMAIL_RE = re.compile(r"[^@\s]{1,64}@[^@\s.][^@\s]*\.[^@\s]+")
MAX_EMAIL = 254
MAX_NAME = 100


def token_digest(token: str) -> bytes:
    """Stored form of a high-entropy secret (session or emailed token): its SHA-256."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def new_secret() -> str:
    """256 bits from the OS CSPRNG, URL-safe."""
    return secrets.token_urlsafe(32)


def canonical_username(username: str) -> str:
    return username.lower()


def canonical_email(address: str) -> str:
    return address.strip().lower()


def is_username(value: str) -> bool:
    return bool(value) and USERNAME_RE.fullmatch(value) is not None


def is_email(value: str) -> bool:
    return (
        bool(value) and len(value) <= MAX_EMAIL and value.isprintable() and value.isascii()
        and EMAIL_RE.fullmatch(value) is not None and not any(c in value for c in "<>,;\"'()[]\\")
    )


def check_username(username: str) -> str:
    if not username:
        raise InvalidArgument("Enter a username.", reason="username_missing")
    if len(username) > 50:
        raise InvalidArgument("The username is too long: use at most 50 characters.",
                              reason="username_too_long")
    if not is_username(username):
        raise InvalidArgument(
            "The username is invalid: use ASCII letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit.", reason="username_invalid")
    return username


def check_email(address: str) -> str:
    """The address without surrounding spaces, or InvalidArgument. ASCII addresses only."""
    address = (address or "").strip()
    if not address:
        raise InvalidArgument("Enter an email address.", reason="email_missing")
    if len(address) > MAX_EMAIL:
        raise InvalidArgument(f"The email address is too long: at most {MAX_EMAIL} characters.",
                              reason="email_invalid")
    if not is_email(address):
        raise InvalidArgument("The email address is not valid: use the form name@example.org.",
                              reason="email_invalid")
    return address


def check_name(name: str) -> str:
    name = (name or "").strip()
    if len(name) > MAX_NAME:
        raise InvalidArgument(f"The name is too long: at most {MAX_NAME} characters.", reason="name_too_long")
    if not name.isprintable():
        raise InvalidArgument("The name contains control characters.", reason="name_invalid")
    return name


def check_session_id(session_id: str) -> str:
    if not session_id:
        raise InvalidArgument("Name the session to revoke (its id).", reason="session_id_missing")
    try:
        return str(uuid.UUID(session_id))
    except ValueError:
        raise InvalidArgument("The session id is not valid.", reason="session_id_invalid") from None
