"""The token string: prefix + a pymacaroons V2 macaroon, strictly parsed and signature-checked.

The macaroon's identifier is `v1:<token id>:<key version>:<nonce>`, where the nonce is 32 random
bytes chosen by the server. The root key is never stored: it is HMAC-SHA256 of the server secret
of that key version over the token id and the nonce, so rotating secrets only needs the old
version kept in settings until its tokens are gone. Parsing rejects anything that is not exactly
what `mint` produces (non-canonical base64 or binary encoding, another location, third-party
caveats), so that no change to a token's bytes can leave it valid.
"""

from __future__ import annotations

import base64
import binascii
import collections
import dataclasses
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping

from pymacaroons import Macaroon
from pymacaroons.macaroon import MACAROON_V2
from pymacaroons.serializers.binary_serializer import BinarySerializer
from pymacaroons.utils import generate_derived_key, hmac_digest

from authsvc.tokens.caveats import SUCCESS, Caveat, Context, Failure, Result, Success, check_all, parse_all, serialize

NONCE_BYTES = 32
MAX_TOKEN_CHARS = 8192
MAX_CAVEATS = 64
CACHE_SIZE = 4096
_ROOT_KEY_LABEL = b"gatehouse/api-token/root-key/v1\x00"
_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")
_IDENTIFIER = re.compile(r"^v1:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}):"
                         r"([1-9][0-9]{0,8}):([A-Za-z0-9_-]{43})$")
_MALFORMED = Failure("This is not a valid API token: it is malformed or incomplete.", "malformed", True)


@dataclasses.dataclass(frozen=True, slots=True)
class ParsedToken:
    token_id: str
    key_version: int
    nonce: bytes
    identifier: bytes
    caveats: tuple[bytes, ...]
    signature: bytes  # raw, 32 bytes


@dataclasses.dataclass(frozen=True, slots=True)
class AuthenticToken:
    """A token whose signature checked out under a current secret, with its caveats parsed (and
    nothing from which the token could be rebuilt: no signature)."""

    token_id: str
    key_version: int
    caveats: tuple[Caveat, ...]


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class TokenCodec:
    """Mints and parses token strings; knows the prefix, the location and the server secrets."""

    def __init__(self, *, prefix: str, location: str, secrets_by_version: Iterable[tuple[int, bytes]]):
        pairs = list(secrets_by_version)
        if not pairs:
            raise ValueError("at least one token secret is required")
        self.prefix = prefix
        self.location = location
        self.current_version = pairs[0][0]
        self._secrets: Mapping[int, bytes] = dict(pairs)
        self._serializer = BinarySerializer()
        # Authentic tokens by SHA-256 of the token string (no secret is kept): parsing
        # and the HMAC chain are pure functions of the string and the secrets, so a token used
        # again skips them. Only the exact same string hits; stored state is checked every time.
        self._authentic: collections.OrderedDict[bytes, AuthenticToken] = collections.OrderedDict()

    def root_key(self, key_version: int, token_id: str, nonce: bytes) -> bytes | None:
        secret = self._secrets.get(key_version)
        if secret is None:
            return None
        return hmac.new(secret, _ROOT_KEY_LABEL + token_id.encode("ascii") + b"\x00" + nonce,
                        hashlib.sha256).digest()

    def mint(self, token_id: str, caveats: Iterable[Caveat]) -> str:
        """A new token string for `token_id` under the current secret (returned once, never stored)."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        version = self.current_version
        identifier = f"v1:{token_id}:{version}:{_b64url(nonce)}"
        macaroon = Macaroon(location=self.location, identifier=identifier,
                            key=self.root_key(version, token_id, nonce), version=MACAROON_V2)
        for caveat in caveats:
            macaroon.add_first_party_caveat(serialize(caveat))
        serialized: str = macaroon.serialize()  # pymacaroons is untyped
        return self.prefix + serialized

    def parse(self, token: str) -> ParsedToken | Failure:
        """The parts of a token, or a Failure; nothing here is trusted before `check_signature`."""
        if not isinstance(token, str) or not token.startswith(self.prefix):
            return Failure(f"This is not a valid API token: it must start with '{self.prefix}'.",
                           "malformed", True)
        body = token[len(self.prefix):]
        if not body or len(body) > MAX_TOKEN_CHARS or not _B64URL.match(body):
            return _MALFORMED
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            return _MALFORMED
        if _b64url(raw) != body or not raw or raw[0] != MACAROON_V2:
            return _MALFORMED
        try:
            macaroon = self._serializer.deserialize_raw(raw)
            canonical = self._serializer.serialize_raw(macaroon) == raw
            identifier = macaroon.identifier_bytes
            signature = binascii.unhexlify(macaroon.signature_bytes)
            caveats = tuple(c.caveat_id_bytes for c in macaroon.caveats)
            third_party = any(c.verification_key_id is not None or c.location for c in macaroon.caveats)
            location = macaroon.location
        except Exception:  # pymacaroons raises many types on garbage; any of them means malformed
            return _MALFORMED
        if not canonical or third_party or len(caveats) > MAX_CAVEATS or len(signature) != 32:
            return _MALFORMED
        if location != self.location:
            return Failure("This API token was not issued by this index.", "wrong_location", True)
        match = _IDENTIFIER.match(identifier.decode("ascii", "replace"))
        if not match:
            return _MALFORMED
        token_id, version, nonce = match.groups()
        nonce_raw = base64.urlsafe_b64decode(nonce + "=")
        if _b64url(nonce_raw) != nonce:
            return _MALFORMED
        return ParsedToken(token_id=token_id, key_version=int(version), nonce=nonce_raw,
                           identifier=identifier, caveats=caveats, signature=signature)

    def check_signature(self, parsed: ParsedToken) -> Result:
        """Recompute the macaroon's HMAC chain from the derived root key (constant-time compare)."""
        key = self.root_key(parsed.key_version, parsed.token_id, parsed.nonce)
        if key is None:
            return Failure("This API token was signed with a retired key: create a new token.",
                           "retired_key", True)
        signature = hmac_digest(generate_derived_key(key), parsed.identifier)
        for caveat in parsed.caveats:
            signature = hmac_digest(signature, caveat)
        if not hmac.compare_digest(signature, parsed.signature):
            return Failure("This is not a valid API token: its signature does not match.",
                           "bad_signature", True)
        return SUCCESS

    def authenticate(self, token: str) -> AuthenticToken | Failure:
        """Format, signature and caveat syntax: what the token says, once it is proven ours."""
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest() if isinstance(token, str) else b""
        cached = self._authentic.get(key)
        if cached is not None:
            self._authentic.move_to_end(key)
            return cached
        parsed = self.parse(token)
        if isinstance(parsed, Failure):
            return parsed
        signed = self.check_signature(parsed)
        if not isinstance(signed, Success):
            return signed
        caveats = parse_all(parsed.caveats)
        if isinstance(caveats, Failure):
            return caveats
        authentic = AuthenticToken(parsed.token_id, parsed.key_version, caveats)
        self._authentic[key] = authentic
        if len(self._authentic) > CACHE_SIZE:
            self._authentic.popitem(last=False)
        return authentic

    def verify(self, token: str, ctx: Context) -> Result:
        """`authenticate` plus every caveat checked against `ctx`, with no database: the part of
        token verification that the property tests exercise. The service adds stored state."""
        authentic = self.authenticate(token)
        if isinstance(authentic, Failure):
            return authentic
        return check_all(authentic.caveats, ctx)
