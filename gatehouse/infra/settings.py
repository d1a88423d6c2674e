"""Reading settings from environment variables.

Each service builds one frozen settings dataclass at start-up through an `Env` reader; nothing
else reads `os.environ`. A missing or malformed variable stops start-up with a message naming it.
"""

from __future__ import annotations

import base64
import builtins
import enum
import os
from collections.abc import Mapping
from typing import Final


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable."""


class _Missing(enum.Enum):
    """The type of `_MISSING`: no default given, so the variable is required."""

    MISSING = enum.auto()


_MISSING: Final = _Missing.MISSING


class Env:
    """Typed access to an environment mapping (os.environ by default). The methods are named after
    the types they return, so inside this class the types are spelled `builtins.str` etc."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = dict(os.environ if environ is None else environ)

    def str(self, name: builtins.str, default: builtins.str | _Missing = _MISSING) -> builtins.str:
        value = self._environ.get(name)
        if value is None or value == "":
            if isinstance(default, _Missing):
                raise SettingsError(f"{name} is required but not set")
            return default
        return value

    def int(self, name: builtins.str, default: builtins.int | _Missing = _MISSING, *,
            minimum: builtins.int | None = None) -> builtins.int:
        raw = self._environ.get(name)
        if raw is None or raw == "":
            if isinstance(default, _Missing):
                raise SettingsError(f"{name} is required but not set")
            return default
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
        if minimum is not None and value < minimum:
            raise SettingsError(f"{name} must be at least {minimum}, got {value}")
        return value

    def float(self, name: builtins.str, default: builtins.float | _Missing = _MISSING) -> builtins.float:
        raw = self._environ.get(name)
        if raw is None or raw == "":
            if isinstance(default, _Missing):
                raise SettingsError(f"{name} is required but not set")
            return default
        try:
            return float(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a number, got {raw!r}") from None

    def bool(self, name: builtins.str, default: builtins.bool | _Missing = _MISSING) -> builtins.bool:
        raw = self._environ.get(name)
        if raw is None or raw == "":
            if isinstance(default, _Missing):
                raise SettingsError(f"{name} is required but not set")
            return bool(default)
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"{name} must be true or false, got {raw!r}")

    def list(self, name: builtins.str, default: tuple[builtins.str, ...] = ()) -> tuple[builtins.str, ...]:
        raw = self._environ.get(name)
        if raw is None or raw.strip() == "":
            return tuple(default)
        return tuple(item.strip() for item in raw.split(",") if item.strip())

    def service_key(self, name: builtins.str, default: builtins.str | _Missing = _MISSING) -> builtins.str:
        """A service credential a client sends. The variable may hold a comma-separated list (the
        accepting service's form during a rotation): the first is the one to send."""
        keys = service_keys(self.str(name, default))
        return keys[0] if keys else ""

    def secret(self, name: builtins.str, default: bytes | _Missing = _MISSING, *,
               min_bytes: builtins.int = 32) -> bytes:
        """A secret key given as URL-safe base64 (or hex); at least `min_bytes` long."""
        raw = self._environ.get(name)
        if raw is None or raw == "":
            if isinstance(default, _Missing):
                raise SettingsError(f"{name} is required but not set")
            return default
        key = decode_key(raw)
        if key is None:
            raise SettingsError(f"{name} must be base64 or hex")
        if len(key) < min_bytes:
            raise SettingsError(f"{name} must hold at least {min_bytes} bytes of key material")
        return key


def service_keys(value: str) -> tuple[str, ...]:
    """The service credentials a server accepts: one key, or a comma-separated list while a key
    is being rotated (every listed key is accepted; clients send the first)."""
    return tuple(key.strip() for key in value.split(",") if key.strip())


def decode_key(raw: str) -> bytes | None:
    raw = raw.strip()
    try:
        if len(raw) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in raw):
            return bytes.fromhex(raw)
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (ValueError, TypeError):
        return None
