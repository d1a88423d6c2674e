"""Trusted publishing at the gateway: PyPI's exchange routes and PEP 807 discovery over real HTTP,
against a real auth service that trusts a local OIDC issuer; twine uploads with the minted token;
one identity token replayed 100 times at once across two auth replicas and their gateways mints
exactly once."""

from __future__ import annotations

import asyncio
import hashlib
import sys

import aiohttp
import pytest
from sqlalchemy import select

from authsvc.server import create_server
from gatehouse.auth.v1 import admin_pb2
from tests.authsvc.publishing_support import (  # noqa: F401  (fixtures)
    AUDIENCE, auth_overrides, claims_of, ghes, github, github_spec, gitlab,
)
from gatehouse.infra.redis_embed import free_port
from tests import eventkeys
from tests.uploadgw.conftest import client_env, make_uploader, twine
from tests.uploadgw.dists import make_wheel
from uploadgw.models import File


async def _publisher(gw, github, project: str = "widget") -> None:
    await make_uploader(gw.auth, "alice", own=(project,))
    await gw.auth.admin.AddPublisher(admin_pb2.AdminAddPublisherRequest(project_name=project,
                                                                         spec=github_spec(github)))


async def _mint(gw, token, *, path: str = "/_/oidc/mint-token", **extra) -> tuple[int, dict]:
    async with gw.http.post(gw.url + path, json={"token": token, **extra}) as resp:
        return resp.status, await resp.json()


async def test_audience_and_mint_token_answer_as_pypi_does(gw, github):
    await _publisher(gw, github)
    async with gw.http.get(gw.url + "/_/oidc/audience") as resp:
        assert resp.status == 200 and await resp.json() == {"audience": AUDIENCE}
    for path in ("/_/oidc/mint-token", "/_/oidc/github/mint-token"):
        status, body = await _mint(gw, github.token(github.github_claims(audience=AUDIENCE)), path=path)
        assert status == 200 and body["success"] is True and body["token"].startswith("pypi-")
        assert isinstance(body["expires"], int) and body["expires"] > gw.clock.now().timestamp()


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"token": 5}', b'{"nothing": "x"}',
                                  b'{"token": "x", "single-use-token": "yes"}'])
async def test_a_malformed_request_is_invalid_payload(gw, body):
    async with gw.http.post(gw.url + "/_/oidc/mint-token", data=body) as resp:
        assert resp.status == 422
        answer = await resp.json()
    assert answer["message"] == "Token request failed"
    assert [e["code"] for e in answer["errors"]] == ["invalid-payload"]


async def test_refusals_carry_pypis_codes_and_say_what_to_fix(gw, github):
    await _publisher(gw, github)
    status, body = await _mint(gw, "not-a-jwt")
    assert status == 422 and body["errors"][0]["code"] == "invalid-token"
    assert "not a JWT" in body["errors"][0]["description"]
    status, body = await _mint(gw, github.token(github.github_claims("octo/other", audience=AUDIENCE)))
    assert status == 422 and body["errors"][0]["code"] == "invalid-publisher"
    assert "add one on the project's page" in body["errors"][0]["description"]
    token = github.token(github.github_claims(audience=AUDIENCE))
    assert (await _mint(gw, token))[0] == 200
    status, body = await _mint(gw, token)
    assert status == 422 and body["errors"][0]["code"] == "invalid-reuse-token"


@pytest.mark.parametrize("auth_overrides", [{}])
async def test_without_issuers_the_routes_say_not_enabled_and_discovery_finds_nothing(gw):
    async with gw.http.get(gw.url + "/_/oidc/audience") as resp:
        assert resp.status == 422 and (await resp.json())["errors"][0]["code"] == "not-enabled"
    status, body = await _mint(gw, "x.y.z")
    assert status == 422 and body["errors"][0]["code"] == "not-enabled"
    async with gw.http.get(gw.url + "/.well-known/pytp", params={"discover": "/legacy/"}) as resp:
        assert resp.status == 404


async def test_pep_807_discovery(gw, github):
    key = hashlib.sha256(b"/legacy/").hexdigest()
    public = gw.settings.public_url.rstrip("/")
    for url, params in ((f"{gw.url}/.well-known/pytp/{key}", None), (f"{gw.url}/.well-known/pytp", {"discover": "/legacy/"})):
        async with gw.http.get(url, params=params, headers={"Accept": "application/vnd.pypi.pytp.v1+json"}) as resp:
            assert resp.status == 200
            assert resp.content_type == "application/vnd.pypi.pytp.v1+json"
            document = await resp.json(content_type=None)
        assert document == {"audience-endpoint": f"{public}/_/oidc/audience",
                            "mint-token-endpoint": f"{public}/_/oidc/mint-token", "features": ["single-use-token"]}
    async with gw.http.get(f"{gw.url}/.well-known/pytp", params={"discover": "/elsewhere/"}) as resp:
        assert resp.status == 404
    async with gw.http.get(f"{gw.url}/.well-known/pytp/{key}", headers={"Accept": "text/html"}) as resp:
        assert resp.status == 406


async def test_twine_uploads_with_a_minted_token_and_the_log_names_the_publisher_and_run(gw, github, tmp_path):
    await _publisher(gw, github)
    claims = github.github_claims(audience=AUDIENCE, sha="c" * 40, ref="refs/tags/v1.0.0")
    status, body = await _mint(gw, github.token(claims))
    assert status == 200, body
    wheel = make_wheel(tmp_path, "widget", "1.0.0")
    result = await twine(gw.upload_url, wheel, password=body["token"])
    assert result.rc == 0, result.output
    (event,) = await gw.events("file:add")
    assert event.actor.kind == event.actor.PUBLISHER and event.project_name == "widget"
    assert event.details["publisher"] == "GitHub octo/widget, workflow release.yml"
    run = claims_of(event)
    assert run["repository"] == "octo/widget" and run["sha"] == "c" * 40 and run["ref"] == "refs/tags/v1.0.0"
    assert run["workflow_ref"] == "octo/widget/.github/workflows/release.yml@refs/tags/v1.0.0"
    (release,) = await gw.events("project:release:add")
    assert release.details["publisher_id"] == event.details["publisher_id"]
    async with gw.gateway.db() as session:
        row = (await session.execute(select(File))).scalar_one()
    assert row.uploader_name.startswith("GitHub octo/widget")
    assert body["token"] not in event.SerializeToString().decode("latin-1")


async def test_the_minted_token_cannot_upload_elsewhere_nor_read_a_private_index(gw, github, tmp_path):
    await _publisher(gw, github)
    await make_uploader(gw.auth, "bob", own=("other",))
    status, body = await _mint(gw, github.token(github.github_claims(audience=AUDIENCE)))
    assert status == 200
    result = await twine(gw.upload_url, make_wheel(tmp_path, "other", "1.0"), password=body["token"])
    assert result.rc != 0 and "403" in result.output and "not valid for project 'other'" in result.flat
    result = await twine(gw.upload_url, make_wheel(tmp_path, "brand-new", "1.0"), password=body["token"])
    assert result.rc != 0 and "403" in result.output


@pytest.mark.parametrize("gw_overrides", [{"index_private": True}])
async def test_the_minted_token_cannot_read_a_private_index(gw, github):
    await _publisher(gw, github)
    status, body = await _mint(gw, github.token(github.github_claims(audience=AUDIENCE)))
    assert status == 200
    auth = aiohttp.BasicAuth("__token__", body["token"])
    async with gw.http.get(gw.url + "/simple/", auth=auth) as resp:
        assert resp.status == 403
        assert "may only upload" in await resp.text()


async def test_a_single_use_token_uploads_one_file(gw, github, tmp_path):
    await _publisher(gw, github)
    status, body = await _mint(gw, github.token(github.github_claims(audience=AUDIENCE)), **{"single-use-token": True})
    assert status == 200
    assert (await twine(gw.upload_url, make_wheel(tmp_path, "widget", "1.0"), password=body["token"])).rc == 0
    second = await twine(gw.upload_url, make_wheel(tmp_path, "widget", "1.1"), password=body["token"])
    assert second.rc != 0 and "used already" in second.flat


async def _gateway_process(gw, auth_target: str, tmp_path) -> tuple[asyncio.subprocess.Process, str]:
    """`python -m uploadgw` on its own port, on the test gateway's database and store, calling
    `auth_target`; its URL once it answers."""
    port = free_port()
    env = client_env(UPLOADGW_DATABASE_URL=gw.settings.database_url, UPLOADGW_STORAGE_DIR=gw.settings.storage_dir,
                     UPLOADGW_AUTHSVC_TARGET=auth_target, UPLOADGW_AUTHSVC_KEY=gw.auth.settings.gateway_key,
                     UPLOADGW_LISTEN=f"127.0.0.1:{port}", UPLOADGW_EVENT_KEYS=eventkeys.producer_env("uploadgw"),
                     UPLOADGW_AUTH_TIMEOUT="15", UPLOADGW_SWEEP_INTERVAL="0", GATEHOUSE_LOG_LEVEL="WARNING")
    log = open(tmp_path / f"gateway-{port}.log", "wb")  # noqa: SIM115 - closed with the process
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "uploadgw", env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            try:
                async with http.get(url + "/_health/live") as resp:
                    if resp.status == 200:
                        return proc, url
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    proc.kill()
    raise AssertionError((tmp_path / f"gateway-{port}.log").read_text())


async def test_one_token_replayed_at_once_on_two_gateway_processes_mints_once(gw, github, tmp_path):
    """Two gateway processes, each calling its own auth replica (both on one database): 100
    exchanges of one identity token sent at once, half to each."""
    await _publisher(gw, github)
    second_auth = await create_server(gw.auth.settings, clock=gw.auth.clock)
    processes = []
    try:
        for target in (gw.auth.target, f"127.0.0.1:{second_auth.port}"):
            processes.append(await _gateway_process(gw, target, tmp_path))
        token = github.token(github.github_claims(audience=AUDIENCE))
        urls = [url + "/_/oidc/mint-token" for _, url in processes] * 50
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as http:
            async def exchange(url: str) -> tuple[int, dict]:
                async with http.post(url, json={"token": token}) as resp:
                    return resp.status, await resp.json()

            results = await asyncio.gather(*(exchange(url) for url in urls))
    finally:
        for proc, _ in processes:
            proc.terminate()
            await proc.wait()
        await second_auth.stop(grace=0)
    assert sorted(status for status, _ in results).count(200) == 1, results[:3]
    refusals = [body["errors"][0] for status, body in results if status != 200]
    assert {refusal["code"] for refusal in refusals} == {"invalid-reuse-token"}, refusals[:3]
