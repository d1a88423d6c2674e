"""Cookies, CSRF tokens and security headers for the account pages.

- The session cookie holds authsvc's opaque session token: HttpOnly, SameSite=Lax, path /,
  Secure (with the `__Host-` prefix) unless the public URL is plain http on localhost.
- CSRF: a random per-browser cookie (HttpOnly) plus, in every form, an HMAC of it and of the
  session token under the gateway's session key (signed double submit, bound to the session).
  Every POST is checked, and a present Origin header must be our own.
- Every page answer carries a CSP without inline script, frame-ancestors 'none',
  Referrer-Policy same-origin (no-referrer where a secret sits in the URL), a
  Permissions-Policy and nosniff.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import secrets
from urllib.parse import urlsplit

from typing import TYPE_CHECKING

from aiohttp import web
from multidict import MultiDictProxy

if TYPE_CHECKING:
    from uploadgw.pages.services.views import CurrentSession

log = logging.getLogger(__name__)

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")
PERMISSIONS_POLICY = ("accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
                      "microphone=(), payment=(), usb=(), publickey-credentials-get=(self)")
LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1"}
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def derive_key(configured: str) -> bytes:
    """The signing key: from UPLOADGW_SESSION_KEY, or random for this process when unset."""
    if not configured:
        log.warning("UPLOADGW_SESSION_KEY is not set: forms and notices will not survive a restart "
                    "or work across replicas")
        return secrets.token_bytes(32)
    return hashlib.sha256(b"gatehouse-pages-v1|" + configured.encode()).digest()


class Signer:
    """HMAC-SHA256 under the session key, with a purpose so that one signature never serves two uses."""

    def __init__(self, key: bytes):
        self._key = key

    def sign(self, purpose: str, value: str) -> str:
        return _b64(hmac.new(self._key, f"{purpose}\x00{value}".encode(), hashlib.sha256).digest())

    def verify(self, purpose: str, value: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(purpose, value).encode(), (signature or "").encode())


@dataclasses.dataclass(frozen=True)
class CookieNames:
    session: str
    csrf: str
    pending: str
    notice: str
    device: str  # the device token authsvc gave this browser at its last login (see login pages)
    held: str  # a login held for new-device confirmation: the token binding its mailed link to this browser


@dataclasses.dataclass(frozen=True)
class CookiePolicy:
    secure: bool
    names: CookieNames

    @classmethod
    def for_public_url(cls, public_url: str) -> "CookiePolicy":
        """Secure cookies, except for plain http on localhost (development and the browser tests)."""
        parts = urlsplit(public_url)
        local_http = parts.scheme == "http" and (parts.hostname or "") in LOCAL_HOSTS
        secure = not local_http
        prefix = "__Host-" if secure else ""
        return cls(secure=secure, names=CookieNames(session=prefix + "gh_session", csrf=prefix + "gh_csrf",
                                                    pending=prefix + "gh_pending", notice=prefix + "gh_notice",
                                                    device=prefix + "gh_device", held=prefix + "gh_held"))

    def set(self, response: web.StreamResponse, name: str, value: str, *, max_age: int | None = None) -> None:
        response.set_cookie(name, value, path="/", httponly=True, secure=self.secure, samesite="Lax",
                            max_age=max_age)

    def clear(self, response: web.StreamResponse, name: str) -> None:
        response.del_cookie(name, path="/", secure=self.secure, httponly=True, samesite="Lax")


@dataclasses.dataclass
class Visit:
    """What the pages learn about one request while answering it."""

    form: MultiDictProxy[str] | None = None
    current: CurrentSession | None = None
    resolved: bool = False
    clear_session: bool = False
    notice_taken: bool = False
    csrf_seed: str | None = None
    csrf_new: str = ""


VISIT = web.RequestKey("gatehouse_pages_visit", Visit)


def visit(request: web.Request) -> Visit:
    state = request.get(VISIT)
    if state is None:
        state = Visit()
        request[VISIT] = state
    return state


class Csrf:
    """Signed double-submit tokens bound to the browser's CSRF cookie and to its session."""

    def __init__(self, signer: Signer, cookies: CookiePolicy):
        self.signer = signer
        self.cookies = cookies

    def seed(self, request: web.Request) -> str:
        """The browser's CSRF cookie value, creating one (set on the answer) when it has none."""
        state = visit(request)
        if state.csrf_seed is None:
            seed = request.cookies.get(self.cookies.names.csrf, "")
            if not (16 <= len(seed) <= 100):
                seed = _b64(secrets.token_bytes(32))
                state.csrf_new = seed
            state.csrf_seed = seed
        return state.csrf_seed

    def _binding(self, request: web.Request, session_token: str | None) -> str:
        if session_token is None:
            session_token = request.cookies.get(self.cookies.names.session, "")
        return hashlib.sha256(session_token.encode()).hexdigest() if session_token else ""

    def token(self, request: web.Request, session_token: str | None = None) -> str:
        seed = self.seed(request)
        return self.signer.sign("csrf", f"{seed}|{self._binding(request, session_token)}")

    def valid(self, request: web.Request, presented: str) -> bool:
        seed = request.cookies.get(self.cookies.names.csrf, "")
        if not seed or not presented:
            return False
        return self.signer.verify("csrf", f"{seed}|{self._binding(request, None)}", presented)

    def finish(self, request: web.Request, response: web.StreamResponse) -> None:
        new = visit(request).csrf_new
        if new and self.cookies.names.csrf not in response.cookies:
            self.cookies.set(response, self.cookies.names.csrf, new)


def same_origin(request: web.Request, public_url: str) -> bool:
    """A POST's Origin header, when the browser sent a real one, names this site.

    Browsers send `Origin: null` for a same-site POST from a page whose referrer policy is
    no-referrer (the emailed-link landing pages), so "null" is left to the CSRF token alone."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return True
    try:
        netloc = urlsplit(origin).netloc.lower()
    except ValueError:  # not a URL ("http://[" is an unclosed IPv6 literal): not this site
        return False
    return netloc in {request.host.lower(), urlsplit(public_url).netloc.lower()}


def add_security_headers(response: web.StreamResponse, *, secure: bool, cacheable: bool = False) -> None:
    """Pages send Referer only to this site; pages reached by an emailed link set no-referrer themselves."""
    headers = response.headers
    headers["Content-Security-Policy"] = CSP
    headers.setdefault("Referrer-Policy", "same-origin")
    headers["Permissions-Policy"] = PERMISSIONS_POLICY
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Cross-Origin-Resource-Policy"] = "same-origin"
    if secure:
        headers["Strict-Transport-Security"] = "max-age=31536000"
    if cacheable:
        headers["Cache-Control"] = "public, max-age=3600"
    else:
        headers["Cache-Control"] = "no-store"
        headers.setdefault("Vary", "Cookie")


def encode_notice(signer: Signer, text: str, kind: str = "success") -> str:
    payload = _b64(json.dumps({"t": text[:500], "k": kind}).encode())
    return f"{payload}.{signer.sign('notice', payload)}"


def decode_notice(signer: Signer, value: str) -> dict[str, str] | None:
    payload, _, signature = (value or "").partition(".")
    if not payload or not signer.verify("notice", payload, signature):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, TypeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("t"), str):
        return None
    return {"text": data["t"], "kind": data.get("k") if data.get("k") in ("success", "info", "warning") else "info"}
