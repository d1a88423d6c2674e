"""Device tokens (OWASP's "device cookie") and the keyed names of unknown logins.

A device token is issued with every login whose password was right; the gateway keeps it in a
cookie and passes it back with the next Login. A login that carries a valid token of the account
it names is limited by that device's own small budget instead of the account's, so someone else
guessing at the account does not lock its owner out of a browser they have used before. A token
grants nothing beyond what the password it was issued for does: it only chooses the budget.

The token is signed (HMAC-SHA256, a key derived from the newest AUTHSVC_TOKEN_SECRETS entry;
older entries still verify), names a random device id and its issue time, and is bound to the
account by the signature (the user id is signed, not carried).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Sequence

from authsvc.accounts.validation import canonical_email, canonical_username
from gatehouse.infra.clock import Clock

PREFIX = "gd1"
MAX_TOKEN = 200


def _derive(secret: bytes, label: bytes) -> bytes:
    return hmac.new(secret, b"gatehouse/" + label, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class DeviceTokens:
    def __init__(self, secrets_by_version: Sequence[tuple[int, bytes]], *, clock: Clock, lifetime: dt.timedelta):
        if not secrets_by_version:
            raise ValueError("device tokens need at least one secret")
        self._keys = {version: _derive(secret, b"device-token/v1") for version, secret in secrets_by_version}
        self._newest = secrets_by_version[0][0]
        self._name_key = _derive(secrets_by_version[0][1], b"login-name/v1")
        self.clock = clock
        self.lifetime = lifetime

    def _mac(self, version: int, user_id: str, device_id: str, issued: int) -> str:
        message = f"{PREFIX}.{version}.{user_id}.{device_id}.{issued}".encode()
        return _b64(hmac.new(self._keys[version], message, hashlib.sha256).digest())

    def issue(self, user_id: str, device_id: str = "") -> str:
        """A token for `user_id`'s device (a new device id unless one is given)."""
        device_id = device_id or _b64(secrets.token_bytes(12))
        issued = int(self.clock.now().timestamp())
        return f"{PREFIX}.{self._newest}.{device_id}.{issued}.{self._mac(self._newest, user_id, device_id, issued)}"

    def device_of(self, token: str, user_id: str) -> str | None:
        """The device id of a valid, unexpired token of `user_id`; None for anything else."""
        if not token or len(token) > MAX_TOKEN:
            return None
        parts = token.split(".")
        if len(parts) != 5 or parts[0] != PREFIX or not parts[1].isdigit() or not parts[3].isdigit():
            return None
        version, device_id, issued = int(parts[1]), parts[2], int(parts[3])
        if version not in self._keys or not device_id:
            return None
        if not hmac.compare_digest(parts[4], self._mac(version, user_id, device_id, issued)):
            return None
        age = self.clock.now().timestamp() - issued
        if age < -60 or age > self.lifetime.total_seconds():
            return None
        return device_id

    def name_subject(self, login: str) -> str:
        """The limiter subject of a login name with no account: a keyed hash of its canonical form,
        so the rate-limit table does not list the names tried (nor can they be checked against it)."""
        login = login.strip()
        canonical = canonical_email(login) if "@" in login else canonical_username(login)
        digest = hmac.new(self._name_key, canonical.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
        return "name:" + digest[:40]
