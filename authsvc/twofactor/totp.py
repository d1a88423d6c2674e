"""TOTP (RFC 6238 through pyotp): seeds, provisioning URIs and QR codes, code checks, and the
encryption of seeds at rest.

Codes are six digits over 30-second steps. A code of the current step or one step either side is
accepted; a code of a step 2 to 10 away is refused with a distinct "out of sync" answer, so that
the user knows to fix the phone's clock. Replay protection (refusing any step at or below the last
accepted one) is enforced by the caller with a conditional UPDATE on the stored step.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import hmac
import io
import re
import secrets
from collections.abc import Sequence

import pyotp
import segno
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from authsvc.errors import InvalidArgument

DIGITS = 6
STEP_SECONDS = 30
SEED_BYTES = 20  # 160 bits, RFC 4226's recommendation and PyPI's
ACCEPT_STEPS = 1
OUT_OF_SYNC_STEPS = 10
_SEPARATORS = re.compile(r"[\s\-]+")


def new_seed() -> str:
    """A fresh random seed, base32 without padding (what authenticator apps expect)."""
    return base64.b32encode(secrets.token_bytes(SEED_BYTES)).decode("ascii").rstrip("=")


def normalise_code(code: str) -> str:
    """Strip spaces and dashes; what remains must be exactly six ASCII digits."""
    cleaned = _SEPARATORS.sub("", code or "")
    if len(cleaned) != DIGITS or not cleaned.isascii() or not cleaned.isdigit():
        raise InvalidArgument("Enter the 6-digit code shown by your authenticator app.", reason="totp_malformed")
    return cleaned


def provisioning_uri(seed: str, *, username: str, issuer: str) -> str:
    return pyotp.TOTP(seed, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=username, issuer_name=issuer)


def qr_svg(data: str) -> str:
    """The data as a QR code, an SVG document (segno, no image library needed)."""
    out = io.BytesIO()
    segno.make_qr(data, error="m").save(out, kind="svg", scale=4, border=4, xmldecl=False,
                                        title="Authenticator app setup code")
    return out.getvalue().decode("utf-8")


def step_at(unix_seconds: float) -> int:
    return int(unix_seconds // STEP_SECONDS)


class Verdict(enum.Enum):
    ACCEPTED = "accepted"
    OUT_OF_SYNC = "out_of_sync"
    INVALID = "invalid"


@dataclasses.dataclass(frozen=True)
class Match:
    verdict: Verdict
    steps: tuple[int, ...] = ()  # the accepted steps the code matched, oldest first


def match_code(seed: str, code: str, now_step: int) -> Match:
    """Which steps near `now_step` the (normalised) code belongs to: within ±1 step accepted,
    2..10 steps away out of sync. Each ring of candidates is compared in full, in constant time;
    the outer ring is computed only when the inner one did not match, which the answer (accepted
    or not) reveals anyway."""
    totp = pyotp.TOTP(seed, digits=DIGITS, interval=STEP_SECONDS)
    given = code.encode("ascii")

    def matching(offsets) -> list[int]:
        found = []
        for offset in offsets:
            step = now_step + offset
            if step >= 0 and hmac.compare_digest(totp.generate_otp(step).encode("ascii"), given):
                found.append(step)
        return found

    accepted = matching(range(-ACCEPT_STEPS, ACCEPT_STEPS + 1))
    if accepted:
        return Match(Verdict.ACCEPTED, tuple(accepted))
    outer = [o for o in range(-OUT_OF_SYNC_STEPS, OUT_OF_SYNC_STEPS + 1) if abs(o) > ACCEPT_STEPS]
    return Match(Verdict.OUT_OF_SYNC if matching(outer) else Verdict.INVALID)


def code_at(seed: str, unix_seconds: float) -> str:
    """The code an app shows at that time (tests and the benchmark play the app with this)."""
    return pyotp.TOTP(seed, digits=DIGITS, interval=STEP_SECONDS).at(int(unix_seconds))


class SeedDecryptError(Exception):
    """A stored seed cannot be decrypted: its key version is gone, or the row was tampered with."""


class SeedBox:
    """AES-256-GCM for TOTP seeds, under versioned keys from settings (newest first).

    New seeds use the newest key; any configured version still decrypts, so keys rotate without
    locking anyone out (a seed under an old key is re-encrypted when next used). The user id and
    key version are bound in as associated data, so a ciphertext cannot be moved to another row.
    """

    NONCE = 12

    def __init__(self, keys: Sequence[tuple[int, bytes]]):
        self._keys = {version: AESGCM(self._derive(version, raw)) for version, raw in keys}
        self.current = keys[0][0] if keys else None

    @property
    def configured(self) -> bool:
        """False without keys (settings built by hand): TOTP setup is then refused."""
        return self.current is not None

    @staticmethod
    def _derive(version: int, raw: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                    info=b"gatehouse/authsvc/totp-seed/v1").derive(raw)

    @staticmethod
    def _aad(user_id: str, version: int) -> bytes:
        return f"totp-seed:{user_id}:{version}".encode()

    def encrypt(self, user_id: str, seed: str) -> tuple[int, bytes]:
        nonce = secrets.token_bytes(self.NONCE)
        sealed = self._keys[self.current].encrypt(nonce, seed.encode("ascii"), self._aad(user_id, self.current))
        return self.current, nonce + sealed

    def decrypt(self, user_id: str, version: int, blob: bytes) -> str:
        box = self._keys.get(version)
        if box is None:
            raise SeedDecryptError(f"TOTP key version {version} is not configured")
        try:
            return box.decrypt(blob[:self.NONCE], blob[self.NONCE:], self._aad(user_id, version)).decode("ascii")
        except (InvalidTag, ValueError, UnicodeDecodeError):
            raise SeedDecryptError("TOTP seed does not decrypt") from None
