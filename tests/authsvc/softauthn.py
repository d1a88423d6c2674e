"""A software WebAuthn authenticator plus the browser around it, in pure Python.

It reads the options JSON the server hands out and returns what a browser's
`PublicKeyCredential.toJSON()` gives: attestation "none" for registration and ES256 assertions,
built with `cryptography` and a small CBOR encoder of its own (so the tests do not use the
library under test to build their inputs). Every field can be bent to play an attacker or a
broken key: origin, RP id, ceremony type, challenge, flags, counter.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40
RS1 = -65535


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def cbor(value) -> bytes:
    """Canonical CBOR for the few types WebAuthn needs: int, bytes, str, list, dict."""
    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        for info, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
            if n < 1 << (8 * struct.calcsize(fmt)):
                return bytes([major << 5 | info]) + struct.pack(fmt, n)
        raise ValueError("integer too large")

    if isinstance(value, bool):
        return b"\xf5" if value else b"\xf4"
    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, bytes):
        return head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return head(3, len(raw)) + raw
    if isinstance(value, list):
        return head(4, len(value)) + b"".join(cbor(v) for v in value)
    if isinstance(value, dict):
        items = sorted(((cbor(k), cbor(v)) for k, v in value.items()), key=lambda kv: (len(kv[0]), kv[0]))
        return head(5, len(items)) + b"".join(k + v for k, v in items)
    raise TypeError(type(value))


class SoftAuthenticator:
    """One credential (an ES256 key pair) on a software key, with its signature counter.
    `algorithm` bends the COSE key: RS1 makes an RSA key signing with SHA-1; any other value than
    -7 labels the P-256 key with that algorithm (an algorithm the server may not know)."""

    def __init__(self, *, origin: str = "http://localhost:8000", counter_step: int = 1, algorithm: int = -7):
        self.origin = origin
        self.algorithm = algorithm
        self.private_key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if algorithm == RS1
                            else ec.generate_private_key(ec.SECP256R1()))
        self.credential_id = os.urandom(32)
        self.counter = 0
        self.counter_step = counter_step
        self.user_handle: bytes | None = None

    def _cose_key(self) -> bytes:
        numbers = self.private_key.public_key().public_numbers()
        if self.algorithm == RS1:
            return cbor({1: 3, 3: RS1, -1: numbers.n.to_bytes(256, "big"), -2: numbers.e.to_bytes(3, "big")})
        return cbor({1: 2, 3: self.algorithm, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                     -3: numbers.y.to_bytes(32, "big")})

    def _sign(self, data: bytes) -> bytes:
        if self.algorithm == RS1:
            return self.private_key.sign(data, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 (the attack)
        return self.private_key.sign(data, ec.ECDSA(hashes.SHA256()))

    @staticmethod
    def _ids(raw_id: bytes, id_: str | None) -> dict:
        """The credential's `id` and `rawId` members (id_="" leaves `id` out)."""
        ids = {"id": b64url(raw_id) if id_ is None else id_, "rawId": b64url(raw_id)}
        if id_ == "":
            del ids["id"]
        return ids

    def _client_data(self, type_: str, challenge: str, origin: str | None, cross_origin: bool = False) -> bytes:
        return json.dumps({"type": type_, "challenge": challenge, "origin": origin or self.origin,
                           "crossOrigin": cross_origin}, separators=(",", ":")).encode()

    @staticmethod
    def _flags(user_present: bool, user_verified: bool) -> int:
        return (UP if user_present else 0) | (UV if user_verified else 0)

    def create(self, options_json: str, *, origin: str | None = None, rp_id: str | None = None,
               type_: str = "webauthn.create", challenge: str | None = None, user_present: bool = True,
               user_verified: bool = True, credential_id: bytes | None = None, flags: int = 0,
               raw_id: bytes | None = None, id_: str | None = None) -> str:
        """navigator.credentials.create() then toJSON(): RegistrationResponseJSON text. `flags` are
        added to the authenticator data's; `raw_id` / `id_` bend the credential ids sent outside
        the attestation (id_="" leaves `id` out)."""
        options = json.loads(options_json)
        rp_id = rp_id or options["rp"]["id"]
        self.user_handle = unb64url(options["user"]["id"])
        if credential_id is not None:
            self.credential_id = credential_id
        client_data = self._client_data(type_, challenge or options["challenge"], origin)
        attested = (bytes(16) + struct.pack(">H", len(self.credential_id)) + self.credential_id
                    + self._cose_key())
        auth_data = (hashlib.sha256(rp_id.encode()).digest()
                     + struct.pack(">BI", self._flags(user_present, user_verified) | AT | flags, self.counter)
                     + attested)
        attestation = cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        spki = self.private_key.public_key().public_bytes(serialization.Encoding.DER,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo)
        return json.dumps({
            **self._ids(self.credential_id if raw_id is None else raw_id, id_), "type": "public-key",
            "response": {"clientDataJSON": b64url(client_data), "attestationObject": b64url(attestation),
                         "authenticatorData": b64url(auth_data), "transports": ["usb"],
                         "publicKey": b64url(spki), "publicKeyAlgorithm": self.algorithm},
            "authenticatorAttachment": "cross-platform", "clientExtensionResults": {},
        })

    def get(self, options_json: str, *, origin: str | None = None, rp_id: str | None = None,
            type_: str = "webauthn.get", challenge: str | None = None, user_present: bool = True,
            user_verified: bool = True, counter: int | None = None, user_handle: bytes | None = None,
            cross_origin: bool = False, flags: int = 0, id_: str | None = None) -> str:
        """navigator.credentials.get() then toJSON(): AuthenticationResponseJSON text."""
        options = json.loads(options_json)
        rp_id = rp_id or options["rpId"]
        allowed = [unb64url(c["id"]) for c in options.get("allowCredentials", [])]
        if allowed and self.credential_id not in allowed:
            raise LookupError("this authenticator holds none of the allowed credentials")
        if counter is None:
            self.counter += self.counter_step
            counter = self.counter
        client_data = self._client_data(type_, challenge or options["challenge"], origin, cross_origin)
        auth_data = (hashlib.sha256(rp_id.encode()).digest()
                     + struct.pack(">BI", self._flags(user_present, user_verified) | flags, counter))
        signature = self._sign(auth_data + hashlib.sha256(client_data).digest())
        handle = user_handle if user_handle is not None else self.user_handle
        return json.dumps({
            **self._ids(self.credential_id, id_), "type": "public-key",
            "response": {"clientDataJSON": b64url(client_data), "authenticatorData": b64url(auth_data),
                         "signature": b64url(signature), "userHandle": b64url(handle) if handle else None},
            "authenticatorAttachment": "cross-platform", "clientExtensionResults": {},
        })
