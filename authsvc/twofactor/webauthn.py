"""WebAuthn security keys through fido2's relying-party server, plus what fido2 leaves to us:
server-side single-use challenges bound to user and ceremony, origin and flag checks with
specific reasons (BS never without BE), only the offered algorithms, the credential id outside
the attestation equal to the attested one, and the signature-counter rule.

Options go out as the W3C JSON forms (`PublicKeyCredentialCreationOptionsJSON`,
`PublicKeyCredentialRequestOptionsJSON`) and responses come back as the browser's
`PublicKeyCredential.toJSON()`; both as JSON text.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Sequence

from fido2.cose import UnsupportedKey
from fido2.server import Fido2Server
from fido2.webauthn import (
    AttestedCredentialData,
    AuthenticationResponse,
    AuthenticatorData,
    CollectedClientData,
    PublicKeyCredentialDescriptor,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialType,
    PublicKeyCredentialUserEntity,
    RegistrationResponse,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)
from sqlalchemy import bindparam, delete, insert
from sqlalchemy.orm import Session

from authsvc.db import new_id
from authsvc.errors import InvalidArgument
from authsvc.twofactor.models import WebAuthnChallenge
from gatehouse.infra.clock import as_utc

log = logging.getLogger("authsvc.twofactor")

MAX_JSON = 64 * 1024
CHALLENGE_BYTES = 32
REGISTER = "register"
REGISTER_PASSKEY = "register_passkey"  # a discoverable credential with user verification
AUTHENTICATE = "authenticate"
KNOWN_TRANSPORTS = ("usb", "nfc", "ble", "hybrid", "internal", "smart-card")


class WebAuthnRefused(Exception):
    """The response is well formed but must not be accepted; `reason` for events and metrics."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclasses.dataclass(frozen=True)
class NewKey:
    credential_id: bytes
    credential_data: bytes
    sign_count: int
    transports: str


def _load(text: str, what: str) -> dict:
    if not text:
        raise InvalidArgument(f"The {what} is missing.", reason="webauthn_missing")
    if len(text) > MAX_JSON:
        raise InvalidArgument(f"The {what} is too large.", reason="webauthn_malformed")
    try:
        data = json.loads(text)
    except ValueError:
        raise InvalidArgument(f"The {what} is not valid JSON.", reason="webauthn_malformed") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"The {what} must be a JSON object.", reason="webauthn_malformed")
    return data


def _require_id(data: dict, what: str) -> None:
    """`id` is required in the JSON forms; fido2 checks it equals `rawId` only when present."""
    if not isinstance(data.get("id"), str) or not isinstance(data.get("rawId"), str):
        raise InvalidArgument(f"The {what} must carry the credential's id and rawId.", reason="webauthn_malformed")


def check_backup_flags(auth_data: AuthenticatorData) -> None:
    """WebAuthn L3 §6.1: a credential that is not backup eligible (BE clear) cannot be backed up
    (BS set). Such authenticator data is not valid, at registration or login."""
    if auth_data.is_backed_up() and not auth_data.is_backup_eligible():
        raise InvalidArgument("The security key's response is invalid: it says the key is backed up, but "
                              "also that it cannot be backed up. Use another security key or passkey "
                              "provider.", reason="webauthn_backup_state_invalid")


def parse_registration(text: str) -> tuple[RegistrationResponse, str]:
    """The browser's registration credential, and its transports ("usb,nfc"), or InvalidArgument."""
    what = "security key's registration response"
    data = _load(text, what)
    _require_id(data, what)
    try:
        response = RegistrationResponse.from_dict(data)
        auth_data = response.response.attestation_object.auth_data  # parsed eagerly: fail here
    except Exception as exc:  # untrusted input: any parsing failure is the client's
        log.info("webauthn registration response unparseable", extra={"error": type(exc).__name__})
        raise InvalidArgument("The security key's registration response is malformed.",
                              reason="webauthn_malformed") from None
    check_backup_flags(auth_data)
    raw = data.get("response", {}).get("transports") or []
    transports = ",".join(t for t in raw if isinstance(t, str) and t in KNOWN_TRANSPORTS)[:100]
    return response, transports


def parse_assertion(text: str) -> AuthenticationResponse:
    what = "security key's response"
    data = _load(text, what)
    _require_id(data, what)
    try:
        response = AuthenticationResponse.from_dict(data)
    except Exception as exc:
        log.info("webauthn assertion unparseable", extra={"error": type(exc).__name__})
        raise InvalidArgument("The security key's response is malformed.", reason="webauthn_malformed") from None
    check_backup_flags(response.response.authenticator_data)
    return response


def check_sign_count(stored: int, presented: int) -> None:
    """When either counter is non-zero the new one must be greater; otherwise the key may have
    been cloned (fido2 leaves this check to the relying party)."""
    if (stored or presented) and presented <= stored:
        raise WebAuthnRefused("webauthn_sign_count", "This security key's signature counter went backwards, "
                              "which can mean the key was cloned. It was refused; use another method and "
                              "remove this key if you do not recognise this.")


class RelyingParty:
    """Our RP (id, name, accepted origins, user-verification policy) around fido2's server."""

    def __init__(self, *, rp_id: str, rp_name: str, origins: Sequence[str], user_verification: str,
                 challenge_lifetime: dt.timedelta):
        self.rp_id = rp_id
        self.origins = frozenset(origins)
        self.user_verification = UserVerificationRequirement(user_verification)
        self.challenge_lifetime = challenge_lifetime
        self._rp_hash = hashlib.sha256(rp_id.encode()).digest()
        self._server = Fido2Server(PublicKeyCredentialRpEntity(name=rp_name, id=rp_id),
                                   attestation="none", verify_origin=self.origins.__contains__)
        self._server.timeout = int(challenge_lifetime.total_seconds() * 1000)
        # What registration_options offers as pubKeyCredParams; only these may be registered.
        self.algorithms = frozenset(p.alg for p in self._server.allowed_algorithms)

    # -- options -----------------------------------------------------------------------------

    def registration_options(self, *, user_handle: bytes, username: str, display_name: str,
                             exclude: Sequence[bytes], passkey: bool = False) -> tuple[str, bytes]:
        """(PublicKeyCredentialCreationOptionsJSON text, the challenge). A passkey must be a
        discoverable credential (resident key) that verifies its user."""
        challenge = secrets.token_bytes(CHALLENGE_BYTES)
        options, _ = self._server.register_begin(
            PublicKeyCredentialUserEntity(id=user_handle, name=username, display_name=display_name or username),
            credentials=[PublicKeyCredentialDescriptor(type=PublicKeyCredentialType.PUBLIC_KEY, id=c)
                         for c in exclude],
            resident_key_requirement=ResidentKeyRequirement.REQUIRED if passkey else ResidentKeyRequirement.DISCOURAGED,
            user_verification=self.registration_verification(passkey), challenge=challenge,
        )
        return json.dumps(dict(options.public_key)), challenge

    def registration_verification(self, passkey: bool) -> UserVerificationRequirement:
        """The user-verification policy of a registration: always required for a passkey."""
        return UserVerificationRequirement.REQUIRED if passkey else self.user_verification

    def authentication_options(self, allow: Sequence[bytes]) -> tuple[str, bytes]:
        """(PublicKeyCredentialRequestOptionsJSON text, the challenge)."""
        return self._request_options(allow, self.user_verification)

    def passkey_options(self) -> tuple[str, bytes]:
        """Request options for a passwordless login: no allowCredentials (the authenticator offers
        its discoverable credentials for this RP) and user verification required."""
        return self._request_options(None, UserVerificationRequirement.REQUIRED)

    def _request_options(self, allow: Sequence[bytes] | None,
                         user_verification: UserVerificationRequirement) -> tuple[str, bytes]:
        challenge = secrets.token_bytes(CHALLENGE_BYTES)
        options, _ = self._server.authenticate_begin(
            None if allow is None else
            [PublicKeyCredentialDescriptor(type=PublicKeyCredentialType.PUBLIC_KEY, id=c) for c in allow],
            user_verification=user_verification, challenge=challenge,
        )
        return json.dumps(dict(options.public_key)), challenge

    # -- verification ------------------------------------------------------------------------

    def _precheck(self, client_data: CollectedClientData, auth_data: AuthenticatorData, ceremony: str,
                  user_verification: str) -> None:
        """The checks fido2 also makes, done first so that each refusal says exactly why."""
        expected = CollectedClientData.TYPE.CREATE if ceremony == REGISTER else CollectedClientData.TYPE.GET
        if client_data.type != expected:
            raise WebAuthnRefused("webauthn_wrong_type", "The security key's response is for another kind of "
                                  "request (expected " + expected.value + ").")
        if client_data.origin not in self.origins:
            raise WebAuthnRefused("webauthn_wrong_origin", "The security key's response came from a web "
                                  "address this site does not accept.")
        if client_data.cross_origin:
            raise WebAuthnRefused("webauthn_cross_origin", "The security key was used from a page embedded in "
                                  "another site.")
        if not hmac.compare_digest(auth_data.rp_id_hash, self._rp_hash):
            raise WebAuthnRefused("webauthn_wrong_rp", "The security key signed for another site.")
        if not auth_data.is_user_present():
            raise WebAuthnRefused("webauthn_no_user_presence", "The security key did not confirm that you were "
                                  "present. Touch the key when it blinks.")
        if user_verification == UserVerificationRequirement.REQUIRED and not auth_data.is_user_verified():
            raise WebAuthnRefused("webauthn_no_user_verification", "The security key did not verify you (PIN "
                                  "or biometrics), which this site requires.")

    def _offered(self, attested: AttestedCredentialData) -> bool:
        algorithm = attested.public_key.get(3)
        return (not isinstance(attested.public_key, UnsupportedKey) and isinstance(algorithm, int)
                and algorithm in self.algorithms)

    @staticmethod
    def _state(challenge: bytes, user_verification: str) -> dict:
        from fido2.utils import websafe_encode

        return {"challenge": websafe_encode(challenge), "user_verification": user_verification}

    def verify_registration(self, response: RegistrationResponse, *, challenge: bytes,
                            user_verification: str, transports: str) -> NewKey:
        attestation = response.response.attestation_object
        self._precheck(response.response.client_data, attestation.auth_data, REGISTER, user_verification)
        attested = attestation.auth_data.credential_data
        if attested is None:
            raise WebAuthnRefused("webauthn_invalid", "The security key did not return a usable credential.")
        # fido2 checks neither of these: the credential named outside must be the one attested,
        # and its key must use an algorithm we offered (not RS1, not one we cannot verify).
        if not hmac.compare_digest(bytes(response.raw_id), bytes(attested.credential_id)):
            raise WebAuthnRefused("webauthn_credential_id_mismatch", "The security key's response names "
                                  "another credential than the one the key created.")
        if not self._offered(attested):
            raise WebAuthnRefused("webauthn_algorithm_not_offered", "The security key created a key with a "
                                  "signature algorithm this site did not offer. Use another security key.")
        try:
            auth_data = self._server.register_complete(self._state(challenge, user_verification), response)
        except Exception as exc:
            log.info("webauthn registration refused by fido2", extra={"error": str(exc)[:200]})
            raise WebAuthnRefused("webauthn_invalid", "The security key's registration response is not "
                                  "valid.") from None
        data = auth_data.credential_data
        if data is None or not data.credential_id or len(data.credential_id) > 1023:
            raise WebAuthnRefused("webauthn_invalid", "The security key did not return a usable credential.")
        return NewKey(credential_id=bytes(data.credential_id), credential_data=bytes(data),
                      sign_count=auth_data.counter, transports=transports)

    def verify_assertion(self, response: AuthenticationResponse, *, challenge: bytes, user_verification: str,
                         credential_data: bytes, user_handle: bytes) -> int:
        """Check the assertion against the stored key; returns the presented signature counter."""
        self._precheck(response.response.client_data, response.response.authenticator_data, AUTHENTICATE,
                       user_verification)
        handle = response.response.user_handle
        if handle is not None and len(handle) and not hmac.compare_digest(handle, user_handle):
            raise WebAuthnRefused("webauthn_wrong_user", "The security key answered for another account.")
        stored = AttestedCredentialData(credential_data)
        if not self._offered(stored):  # a key registered before only offered algorithms were
            raise WebAuthnRefused("webauthn_algorithm_not_offered", "This security key uses a signature "
                                  "algorithm this site does not accept. Use another method, then remove "
                                  "this key and add it again.")
        try:
            self._server.authenticate_complete(self._state(challenge, user_verification), [stored], response)
        except Exception as exc:
            log.info("webauthn assertion refused by fido2", extra={"error": str(exc)[:200]})
            raise WebAuthnRefused("webauthn_invalid", "The security key's signature is not valid.") from None
        return response.response.authenticator_data.counter


# -- challenges --------------------------------------------------------------------------------


def challenge_digest(challenge: bytes) -> bytes:
    return hashlib.sha256(challenge).digest()


# Prebuilt Core statements (no statement building or unit of work on the login path).
_CHALLENGES = WebAuthnChallenge.__table__
_DROP_EXPIRED = delete(_CHALLENGES).where(_CHALLENGES.c.user_id == bindparam("uid"),
                                          _CHALLENGES.c.expires_at <= bindparam("now"))
_INSERT = insert(_CHALLENGES)


def _consume_statement(bound_to_login: bool):
    c = _CHALLENGES.c
    login = c.pending_login_id == bindparam("pid") if bound_to_login else c.pending_login_id.is_(None)
    return (delete(_CHALLENGES)
            .where(c.challenge_hash == bindparam("hash"), c.user_id == bindparam("uid"),
                   c.ceremony == bindparam("ceremony"), login)
            .returning(c.user_verification, c.expires_at))


_CONSUME = {True: _consume_statement(True), False: _consume_statement(False)}


def store_challenge(s: Session, challenge: bytes, *, user_id: str, ceremony: str, pending_login_id: str | None,
                    user_verification: str, now: dt.datetime, lifetime: dt.timedelta) -> None:
    """Keep the challenge's digest, bound to user, ceremony and pending login (and drop the
    user's expired ones)."""
    conn = s.connection()
    conn.execute(_DROP_EXPIRED, {"uid": user_id, "now": now})
    conn.execute(_INSERT, {"id": new_id(), "challenge_hash": challenge_digest(challenge), "user_id": user_id,
                           "ceremony": ceremony, "pending_login_id": pending_login_id,
                           "user_verification": user_verification, "created_at": now,
                           "expires_at": now + lifetime})


def consume_challenge(s: Session, challenge: bytes, *, user_id: str, ceremony: str,
                      pending_login_id: str | None, now: dt.datetime) -> str:
    """Use up the challenge the response signed: it must be ours, issued to this user for this
    ceremony (and this pending login), and unexpired. Returns the user-verification policy it was
    issued under. One atomic DELETE … RETURNING: a challenge is consumed once, and a challenge
    issued to someone else is neither accepted nor burnt."""
    found = s.connection().execute(_CONSUME[pending_login_id is not None], {
        "hash": challenge_digest(challenge), "uid": user_id, "ceremony": ceremony, "pid": pending_login_id,
    }).first()
    if found is None:
        raise WebAuthnRefused("webauthn_challenge", "The security key answered a challenge this request did "
                              "not issue, or one already used. Start again.")
    if as_utc(found.expires_at) <= now:
        raise WebAuthnRefused("webauthn_challenge_expired", "The security key request expired. Start again.")
    return found.user_verification


MAX_LABEL = 64


def check_label(label: str) -> str:
    label = (label or "").strip()
    if not label:
        raise InvalidArgument("Give the security key a name.", reason="label_missing")
    if len(label) > MAX_LABEL or not label.isprintable():
        raise InvalidArgument(f"The key's name must be at most {MAX_LABEL} printable characters.",
                              reason="label_invalid")
    return label


def check_key_id(key_id: str) -> str:
    if not key_id or len(key_id) > 36:
        raise InvalidArgument("Name the security key by its id.", reason="key_id_invalid")
    return key_id
