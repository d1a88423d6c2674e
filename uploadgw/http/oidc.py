"""Trusted publishing's HTTP routes, as PyPI and PEP 807 shape them; authsvc decides everything.

- `GET /_/oidc/audience` -> `{"audience": "…"}`.
- `POST /_/oidc/mint-token` (and `/_/oidc/github/mint-token`, the path older clients use) with
  `{"token": "<identity token>"}` (and optionally `"single-use-token": true`, see below) ->
  `{"success": true, "token": "pypi-…", "expires": <unix time>}`; a refusal is HTTP 422
  `{"message": "Token request failed", "errors": [{"code": …, "description": …}]}` with PyPI's
  codes; authsvc unreachable (or the issuer's keys unavailable) is 503 in the same shape.
- PEP 807 discovery: `GET /.well-known/pytp/<sha256 of the upload path>` and
  `GET /.well-known/pytp?discover=<upload path>` -> the audience and mint-token endpoints' URLs, and
  `"features": ["single-use-token"]`: this index mints, on request, a token good for one upload.
  404 for any other path, or while trusted publishing is not enabled.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping

from aiohttp import web

from uploadgw.authclient import AuthClient, ExchangeRefused
from uploadgw.http.upload import origin_of

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024  # an identity token is a few kilobytes
UPLOAD_PATHS = ("/legacy/", "/legacy")
MEDIA_TYPE = "application/vnd.pypi.pytp.v1+json"
ACCEPTED = (MEDIA_TYPE, "application/json", "application/*", "*/*")
FEATURES = ("single-use-token",)


def _error(status: int, code: str, description: str) -> web.Response:
    return web.json_response({"message": "Token request failed", "errors": [{"code": code, "description": description}]},
                             status=status, headers={"Cache-Control": "no-store"})


def _refusal(exc: ExchangeRefused) -> web.Response:
    return _error(503 if exc.unavailable else 422, exc.code, exc.description)


def _accepts(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    if not accept:
        return True
    return any(part.split(";")[0].strip().lower() in ACCEPTED for part in accept.split(","))


class OidcHandlers:
    def __init__(self, auth: AuthClient, public_url: str) -> None:
        self.auth = auth
        self.public_url = public_url.rstrip("/")
        self._keys = {hashlib.sha256(path.encode()).hexdigest() for path in UPLOAD_PATHS}

    async def audience(self, request: web.Request) -> web.Response:
        try:
            audience = await self.auth.oidc_audience()
        except ExchangeRefused as exc:
            return _refusal(exc)
        return web.json_response({"audience": audience}, headers={"Cache-Control": "no-store"})

    async def mint_token(self, request: web.Request) -> web.Response:
        body = await request.content.read(MAX_BODY + 1)
        payload = _payload(body)
        if isinstance(payload, str):
            return _error(422, "invalid-payload", payload)
        token, single_use = payload
        try:
            minted = await self.auth.mint_publisher_token(token, single_use=single_use, origin=origin_of(request))
        except ExchangeRefused as exc:
            return _refusal(exc)
        return web.json_response({"success": True, "token": minted.token, "expires": minted.expires},
                                 headers={"Cache-Control": "no-store"})

    async def discover(self, request: web.Request) -> web.Response:
        """PEP 807 discovery, by the hashed upload path in the URL or the plain one in `discover`."""
        if not _accepts(request):
            return web.Response(status=406, text=f"Ask for {MEDIA_TYPE}.\n")
        key = request.match_info.get("key")
        if key is None:
            path = request.query.get("discover")
            key = hashlib.sha256(path.encode()).hexdigest() if path is not None else ""
        if key not in self._keys:
            raise web.HTTPNotFound()
        try:
            await self.auth.oidc_audience()
        except ExchangeRefused as exc:
            if exc.code == "not-enabled":
                raise web.HTTPNotFound() from None
            return _refusal(exc)
        base = self.public_url
        document = {"audience-endpoint": f"{base}/_/oidc/audience", "mint-token-endpoint": f"{base}/_/oidc/mint-token",
                    "features": list(FEATURES)}
        return web.json_response(document, content_type=MEDIA_TYPE, headers={"Cache-Control": "no-store"})


def _payload(body: bytes) -> tuple[str, bool] | str:
    """(the identity token, single use) from the body, or what is wrong with it."""
    shape = 'The body must be a JSON object {"token": "<the CI job\'s OIDC identity token>"}.'
    if len(body) > MAX_BODY:
        return f"The body is larger than {MAX_BODY} bytes. " + shape
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return "The body is not JSON. " + shape
    if not isinstance(data, Mapping) or not isinstance(data.get("token"), str) or not data["token"]:
        return shape
    single_use = data.get("single-use-token", False)
    if not isinstance(single_use, bool):
        return '"single-use-token" must be true or false.'
    return data["token"], single_use
