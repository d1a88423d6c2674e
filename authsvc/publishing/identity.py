"""Verifying a CI job's OIDC identity token (a JWT) with PyJWT.

What holds before any claim is believed: the token is at most MAX_TOKEN_CHARS; its header names
RS256 or ES256 and a `kid`; its (unverified) `iss` is one of the operator's issuers, whose key
`kid` then verifies the signature with that key's algorithm only (so `alg: none` and HS256 signed
with a public key are refused); `iss`, `iat`, `exp`, `aud` and `jti` are present; `aud` is exactly
one audience, ours; `exp`, `nbf` and `iat` hold on the injected clock with at most `leeway`.
Every refusal is ExchangeRefused("invalid_token") with a message for the CI user.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

import jwt

from authsvc.errors import ExchangeRefused
from authsvc.publishing.keys import ALGORITHMS, KeySets
from authsvc.settings import OidcIssuer
from gatehouse.infra.clock import Clock

MAX_TOKEN_CHARS = 16 * 1024
MAX_JTI_CHARS = 255
REQUIRED = ("iss", "iat", "exp", "aud", "jti")


@dataclasses.dataclass(frozen=True)
class IdentityToken:
    """A verified identity token: its issuer and claims."""

    issuer: OidcIssuer
    claims: Mapping[str, Any]
    jti: str
    expires_at: dt.datetime


def _refuse(message: str) -> ExchangeRefused:
    return ExchangeRefused(message, reason="invalid_token")


class IdentityVerifier:
    def __init__(self, *, issuers: tuple[OidcIssuer, ...], audience: str, leeway: dt.timedelta,
                 keys: KeySets, clock: Clock) -> None:
        self.issuers = {issuer.url: issuer for issuer in issuers}
        self.audience = audience
        self.leeway = leeway
        self.keys = keys
        self.clock = clock

    async def verify(self, token: str) -> IdentityToken:
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise _refuse(f"The identity token is empty or longer than {MAX_TOKEN_CHARS} characters.")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _refuse("The identity token is not a JWT (header.payload.signature).") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS.values():
            raise _refuse(f"The identity token is signed with {algorithm!r}; only RS256 and ES256 are accepted.")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _refuse("The identity token's header names no key (kid).")
        claimed = unverified.get("iss")
        issuer = self.issuers.get(claimed) if isinstance(claimed, str) else None
        if issuer is None:
            raise _refuse(f"The identity token's issuer {str(unverified.get('iss'))[:200]!r} is not one this "
                          "index trusts; ask its operators to configure it.")
        key = await self.keys.key(issuer, kid)
        if key is None:
            raise _refuse(f"The identity token is signed with a key ({kid[:100]!r}) that {issuer.url} does not "
                          "publish.")
        if key.algorithm_name != algorithm:
            raise _refuse("The identity token's algorithm does not match its key.")
        claims = self._decode(token, key, issuer)
        self._check_times(claims)
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_CHARS:
            raise _refuse("The identity token's jti claim is not a usable string.")
        return IdentityToken(issuer=issuer, claims=claims, jti=jti,
                             expires_at=dt.datetime.fromtimestamp(claims["exp"], dt.timezone.utc))

    def _decode(self, token: str, key: jwt.PyJWK, issuer: OidcIssuer) -> dict[str, Any]:
        try:
            claims = jwt.decode(
                token, key=key, algorithms=[key.algorithm_name], issuer=issuer.url,
                # Times are checked below on the injected clock; the audience here and there.
                options={"require": list(REQUIRED), "verify_exp": False, "verify_nbf": False,
                         "verify_iat": False, "verify_aud": False, "verify_iss": True})
        except jwt.MissingRequiredClaimError as exc:
            raise _refuse(f"The identity token has no {exc.claim} claim.") from None
        except jwt.InvalidSignatureError:
            raise _refuse("The identity token's signature does not verify.") from None
        except jwt.PyJWTError:
            raise _refuse("The identity token is malformed.") from None
        audience = claims["aud"]
        if isinstance(audience, list) and len(audience) == 1:
            audience = audience[0]
        if not isinstance(audience, str):
            raise _refuse(f"The identity token names several audiences; request one, {self.audience!r}.")
        if audience != self.audience:
            raise _refuse(f"The identity token is for audience {audience[:100]!r}; this index's audience is "
                          f"{self.audience!r} (GET /_/oidc/audience).")
        return claims

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self.clock.now().timestamp()
        leeway = self.leeway.total_seconds()
        for name in ("exp", "iat", "nbf"):
            if name in claims and (type(claims[name]) not in (int, float) or not 0 <= claims[name] < 2**53):
                raise _refuse(f"The identity token's {name} claim is not a time.")
        if now >= claims["exp"] + leeway:
            raise _refuse("The identity token has expired: request a new one in the job and exchange it "
                          "straight away.")
        if "nbf" in claims and now + leeway < claims["nbf"]:
            raise _refuse("The identity token is not valid yet (nbf is in the future): check the clocks.")
        if now + leeway < claims["iat"]:
            raise _refuse("The identity token was issued in the future (iat): check the clocks.")
