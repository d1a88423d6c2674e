"""A real OIDC issuer on 127.0.0.1 for the trusted-publishing tests (and any test that needs one).

`OidcIssuer` serves, from its own thread and event loop (so that sync tests, async tests and
subprocesses such as `uv publish` can all reach it):
- `/.well-known/openid-configuration` (the discovery document; `issuer` repeats the URL exactly),
- `/jwks` (the current public keys; keys are made per issuer, RSA and P-256, and can be rotated),
- `/actions-token?audience=…` answering like GitHub Actions' ACTIONS_ID_TOKEN_REQUEST_URL
  (`Authorization: bearer <request token>` -> `{"value": "<identity token>"}`), with the claims
  given to `actions_env`.
`github_claims` and `gitlab_claims` build claims shaped like theirs; `token` signs any claims
(and can be told to misbehave: another key, another algorithm, no kid). `fetches` counts the
key-set requests, `fail` makes the key endpoints answer 503 (an issuer outage).

    with OidcIssuer() as issuer:
        jwt = issuer.token(issuer.github_claims("octo/widget", audience="gatehouse"))
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa


class SigningKey:
    def __init__(self, algorithm: str = "RS256", kid: str | None = None) -> None:
        self.algorithm = algorithm
        self.kid = kid or uuid.uuid4().hex[:16]
        if algorithm == "RS256":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif algorithm == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
        else:
            raise ValueError(algorithm)

    def jwk(self) -> dict[str, Any]:
        algo = jwt.algorithms.RSAAlgorithm if self.algorithm == "RS256" else jwt.algorithms.ECAlgorithm
        data = algo.to_jwk(self.private.public_key(), as_dict=True)
        return {**data, "kid": self.kid, "use": "sig", "alg": self.algorithm}


class OidcIssuer:
    def __init__(self, *, algorithm: str = "RS256", path: str = "") -> None:
        self.keys = [SigningKey(algorithm)]
        self.path = path  # e.g. "/_services/token" for a GHES-like issuer URL with a path
        self.fetches = 0
        self.discovery_fetches = 0
        self.fail = False
        self.issuer_override: str | None = None  # a discovery document naming another issuer
        self.redirect_discovery: str | None = None  # answer the discovery request with a redirect there
        self.actions_claims: dict[str, Any] = {}
        self.request_token = secrets.token_urlsafe(16)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="oidc-issuer", daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> "OidcIssuer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> "OidcIssuer":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_get(self.path + "/.well-known/openid-configuration", self._discovery)
        app.router.add_get(self.path + "/jwks", self._jwks)
        app.router.add_get("/actions-token", self._actions_token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    # -- endpoints -------------------------------------------------------------------------------

    async def _discovery(self, request: web.Request) -> web.Response:
        self.discovery_fetches += 1
        if self.fail:
            return web.Response(status=503)
        if self.redirect_discovery:
            raise web.HTTPFound(self.redirect_discovery)
        return web.json_response({"issuer": self.issuer_override or self.url, "jwks_uri": self.url + "/jwks",
                                  "id_token_signing_alg_values_supported": ["RS256", "ES256"]})

    async def _jwks(self, request: web.Request) -> web.Response:
        self.fetches += 1
        if self.fail:
            return web.Response(status=503)
        return web.json_response({"keys": [key.jwk() for key in self.keys]})

    async def _actions_token(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization", "").lower() != f"bearer {self.request_token}".lower():
            return web.Response(status=401)
        audience = request.query.get("audience", "")
        fresh = {**self.actions_claims, **self._times(None, 300), "aud": audience}
        return web.json_response({"value": self.token(fresh)})

    # -- keys and tokens -------------------------------------------------------------------------

    def rotate(self, algorithm: str | None = None, *, keep_old: bool = False) -> SigningKey:
        """A new signing key; the old one leaves the key set unless `keep_old`."""
        key = SigningKey(algorithm or self.keys[0].algorithm)
        self.keys = [key, *self.keys] if keep_old else [key]
        return key

    def token(self, claims: Mapping[str, Any], *, key: SigningKey | None = None, headers: Mapping[str, Any] | None = None,
              algorithm: str | None = None) -> str:
        """The claims signed with the current key (or `key`); `headers` replace header fields (None
        values drop them)."""
        key = key or self.keys[0]
        header = {"kid": key.kid, "typ": "JWT"}
        for name, value in (headers or {}).items():
            if value is None:
                header.pop(name, None)
            else:
                header[name] = value
        return jwt.encode(dict(claims), key.private, algorithm=algorithm or key.algorithm, headers=header)

    def _times(self, now: float | None, lifetime: int) -> dict[str, Any]:
        now = int(time.time() if now is None else now)
        return {"iat": now, "nbf": now, "exp": now + lifetime, "jti": uuid.uuid4().hex, "iss": self.url}

    def github_claims(self, repository: str = "octo/widget", *, audience: str = "gatehouse",
                      workflow: str = "release.yml", environment: str | None = None, ref: str = "refs/tags/v1.0",
                      sha: str = "a" * 40, event_name: str = "push", repository_id: str = "1001",
                      owner_id: str = "2002", now: float | None = None, lifetime: int = 300,
                      **extra: Any) -> dict[str, Any]:
        owner = repository.split("/")[0]
        claims = {
            **self._times(now, lifetime), "aud": audience, "sub": f"repo:{repository}:ref:{ref}",
            "repository": repository, "repository_owner": owner, "repository_id": repository_id,
            "repository_owner_id": owner_id, "workflow_ref": f"{repository}/.github/workflows/{workflow}@{ref}",
            "job_workflow_ref": f"{repository}/.github/workflows/{workflow}@{ref}", "ref": ref, "sha": sha,
            "event_name": event_name, "run_id": "777", "run_attempt": "1", "actor": owner,
        }
        if environment is not None:
            claims["environment"] = environment
        claims.update(extra)
        return claims

    def gitlab_claims(self, project_path: str = "group/widget", *, audience: str = "gatehouse",
                      ci_config_path: str = ".gitlab-ci.yml", environment: str | None = None,
                      ref: str = "v1.0", sha: str = "b" * 40, project_id: str = "31",
                      namespace_id: str = "41", now: float | None = None, lifetime: int = 300,
                      **extra: Any) -> dict[str, Any]:
        namespace = project_path.rsplit("/", 1)[0]
        claims = {
            **self._times(now, lifetime), "aud": audience, "sub": f"project_path:{project_path}:ref_type:tag:ref:{ref}",
            "namespace_path": namespace, "namespace_id": namespace_id, "project_path": project_path,
            "project_id": project_id, "ci_config_ref_uri": f"gitlab.example/{project_path}//{ci_config_path}@refs/tags/{ref}",
            "ref": ref, "ref_type": "tag", "ref_path": f"refs/tags/{ref}", "sha": sha, "pipeline_id": "55",
            "job_id": "66", "user_login": "dev",
        }
        if environment is not None:
            claims["environment"] = environment
        claims.update(extra)
        return claims

    def actions_env(self, claims: Mapping[str, Any]) -> dict[str, str]:
        """The environment of a simulated GitHub Actions job whose token request answers `claims`
        (the audience is the one the client asks for)."""
        self.actions_claims = dict(claims)
        return {"GITHUB_ACTIONS": "true", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token,
                "ACTIONS_ID_TOKEN_REQUEST_URL": f"http://127.0.0.1:{self.port}/actions-token?x=1"}
