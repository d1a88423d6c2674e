"""twine (a real subprocess) against the gateway: every way of passing the token, and every refusal
twine users must be able to read."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import sys
import types

import aiohttp
import pytest
from sqlalchemy import select

from gatehouse.auth.v1 import admin_pb2, common_pb2
from tests.uploadgw.conftest import BACKENDS, client_env, gateway_settings, make_uploader, mint, run, twine
from tests.uploadgw.dists import make_sdist, make_wheel, write_build_project
from tests.uploadgw.http_support import post_upload
from uploadgw.models import File, Filename, Release
from uploadgw.server import start


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_wheel_and_sdist_with_u_token(gw, tmp_path):
    up = await make_uploader(gw.auth)
    wheel = make_wheel(tmp_path, "alpha-pkg", "1.0.0")
    sdist = make_sdist(tmp_path, "alpha-pkg", "1.0.0")
    result = await twine(gw.upload_url, wheel, sdist, password=up.token)
    assert result.rc == 0, result.output
    async with gw.gateway.db() as session:
        files = (await session.execute(select(File).order_by(File.filename))).scalars().all()
        release = (await session.execute(select(Release))).scalar_one()
    assert [f.filename for f in files] == [wheel.name, sdist.name]
    assert release.version == "1.0.0" and release.requires_python == ">=3.8"
    for row, path in zip(files, (wheel, sdist)):
        assert row.size == path.stat().st_size
        assert row.token_id == up.token_id and row.uploader_name == up.username
        assert row.md5 is None  # twine >= 5 sends no md5
        assert path.name not in row.path  # the storage path is chosen by the server
    assert files[0].metadata_sha256 and files[1].metadata_sha256 is None
    # One release event, one file event per file, with who, which token and which client.
    assert [e.details["version"] for e in await gw.events("project:release:add")] == ["1.0.0"]
    file_events = await gw.events("file:add")
    assert sorted(e.details["filename"] for e in file_events) == sorted([wheel.name, sdist.name])
    for event in file_events:
        assert event.details["token_id"] == up.token_id
        assert event.details["uploader"] == up.username
        # The client is the event's own field, stated once: not repeated among the details.
        assert event.user_agent.startswith("twine/") and event.ip_address
        assert "user_agent" not in event.details
        assert not {event.user_agent, event.ip_address} & set(event.details.values())
        assert event.actor.username == up.username and event.project_name == "alpha-pkg"
        assert up.token not in event.SerializeToString().decode("latin-1")


async def test_environment_variables(gw, tmp_path):
    up = await make_uploader(gw.auth)
    wheel = make_wheel(tmp_path, "env-pkg", "0.1")
    result = await twine(gw.upload_url, wheel, user=None,
                         env=client_env(TWINE_USERNAME="__token__", TWINE_PASSWORD=up.token))
    assert result.rc == 0, result.output
    assert len(await gw.events("file:add")) == 1


async def test_pypirc_section(gw, tmp_path):
    up = await make_uploader(gw.auth)
    wheel = make_wheel(tmp_path, "rc-pkg", "2.0")
    pypirc = tmp_path / "pypirc"
    pypirc.write_text(f"[distutils]\nindex-servers =\n    gatehouse\n\n[gatehouse]\nrepository = {gw.upload_url}\n"
                      f"username = __token__\npassword = {up.token}\n")
    result = await twine("", wheel, user=None, extra=("--config-file", str(pypirc), "--repository", "gatehouse"))
    assert result.rc == 0, result.output
    assert len(await gw.events("file:add")) == 1


async def test_url_without_trailing_slash_works(gw, tmp_path):
    up = await make_uploader(gw.auth)
    result = await twine(gw.url + "/legacy", make_wheel(tmp_path, "slash-pkg", "1.0"), password=up.token)
    assert result.rc == 0, result.output
    assert gw.requests_to("upload_no_slash", 200) == 1


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_built_with_python_build_then_installed_by_pip(gw, tmp_path):
    up = await make_uploader(gw.auth)
    project = write_build_project(tmp_path / "src", "built-pkg", "0.3.0")
    built = await run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path / "dist"),
                       str(project)])
    assert built.rc == 0, built.output
    dists = sorted((tmp_path / "dist").iterdir())
    assert sorted(p.suffix for p in dists) == [".gz", ".whl"]
    result = await twine(gw.upload_url, *dists, password=up.token)
    assert result.rc == 0, result.output
    target = tmp_path / "target"
    pip = await run([sys.executable, "-m", "pip", "install", "--index-url", gw.url + "/simple/", "--no-cache-dir",
                     "--target", str(target), "built-pkg==0.3.0"])
    assert pip.rc == 0, pip.output
    assert (target / "built_pkg" / "__init__.py").read_text() == 'VERSION = "0.3.0"\n'
    assert gw.requests_to("file_metadata", 200) >= 1  # pip resolved from the PEP 658 metadata file


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_token_for_another_project_shows_the_reason(gw, tmp_path):
    other = await make_uploader(gw.auth, own=["not-mine"])
    up = await make_uploader(gw.auth, own=["mine"], projects=["mine"])
    result = await twine(gw.upload_url, make_wheel(tmp_path, "not-mine", "1.0"), password=up.token)
    assert result.rc != 0
    assert "403" in result.flat and "not valid for project 'not-mine'" in result.flat, result.output
    assert other.token != up.token
    assert await gw.events("file:add") == []
    # Its bytes were stored while authsvc answered, under a key of their own, and removed on the refusal.
    assert await gw.stored_blobs() == [] and await gw.temp_files() == []


async def test_an_upload_refusal_prints_its_message_and_counts_under_authsvcs_reason(gw, tmp_path):
    """The refusal crosses the upload check's stream with its ErrorInfo: twine prints authsvc's
    message (the reason phrase, status from the code) and the gateway counts it by authsvc's reason."""
    await make_uploader(gw.auth, own=["theirs-pkg"])
    up = await make_uploader(gw.auth, own=["ours-pkg"], projects=["ours-pkg"])
    result = await twine(gw.upload_url, make_wheel(tmp_path, "theirs-pkg", "1.0"), password=up.token)
    assert result.rc != 0 and "403" in result.flat, result.output
    assert "not valid for project 'theirs-pkg'" in result.flat, result.output
    assert gw.refusals("not_in_scope") == 1 and gw.refusals("token_denied") == 0

async def test_expired_token_shows_the_reason(gw, tmp_path):
    expires = gw.clock.now() + dt.timedelta(minutes=5)
    up = await make_uploader(gw.auth, expires_at=expires)
    gw.clock.advance(minutes=10)
    result = await twine(gw.upload_url, make_wheel(tmp_path, "late-pkg", "1.0"), password=up.token)
    assert result.rc != 0
    assert "403" in result.flat and "expired" in result.flat, result.output
    assert await gw.stored_blobs() == [] and await gw.temp_files() == []


async def test_revoked_token_shows_the_reason(gw, tmp_path):
    up = await make_uploader(gw.auth)
    await gw.auth.admin.RevokeToken(admin_pb2.AdminRevokeTokenRequest(token_id=up.token_id))
    result = await twine(gw.upload_url, make_wheel(tmp_path, "gone-pkg", "1.0"), password=up.token)
    assert result.rc != 0
    assert "403" in result.flat and "deleted" in result.flat, result.output


async def test_password_instead_of_token_is_told_to_use_a_token(gw, tmp_path):
    await make_uploader(gw.auth, "alice")
    result = await twine(gw.upload_url, make_wheel(tmp_path, "pw-pkg", "1.0"), user="alice",
                         password="correct horse battery staple")
    assert result.rc != 0
    assert "403" in result.flat and "Use an API token" in result.flat, result.output


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_duplicates(gw, tmp_path):
    up = await make_uploader(gw.auth)
    wheel = make_wheel(tmp_path, "dup-pkg", "1.0")
    assert (await twine(gw.upload_url, wheel, password=up.token)).rc == 0
    blobs = await gw.stored_blobs()
    again = await twine(gw.upload_url, wheel, password=up.token)
    assert again.rc == 0, again.output  # identical bytes: 200, nothing new
    assert await gw.stored_blobs() == blobs and len(await gw.events("file:add")) == 1
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    different = make_wheel(other_dir, "dup-pkg", "1.0", extra_files={"dup_pkg/extra.py": b"x = 1\n"})
    refused = await twine(gw.upload_url, different, password=up.token)
    assert refused.rc != 0 and "400" in refused.flat and "File already exists" in refused.flat, refused.output
    assert await gw.stored_blobs() == blobs


async def test_auth_service_unreachable_is_503_and_nothing_is_stored(auth, make_database_url, tmp_path):
    """Nothing listens on the auth target: every upload is answered 503 with the reason."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    settings = gateway_settings(make_database_url("uploadgw"), str(tmp_path / "store"), auth,
                                authsvc_target=f"127.0.0.1:{dead}", auth_timeout=1.0)
    running = await start(settings, clock=auth.clock, migrate_first=True)
    try:
        up = await make_uploader(auth)
        result = await twine(running.url + "/legacy/", make_wheel(tmp_path, "down-pkg", "1.0"), password=up.token)
        assert result.rc != 0
        assert "503" in result.flat and "authentication service is unavailable" in result.flat, result.output
        async with running.gateway.db() as session:
            assert (await session.execute(select(Filename))).first() is None
    finally:
        await running.stop()


async def test_auth_service_hanging_hits_the_deadline(auth, make_database_url, tmp_path):
    """A peer that accepts connections but never answers: the deadline turns it into a 503."""
    async def silent(reader, writer):
        try:
            await reader.read()
        except asyncio.CancelledError:
            writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = gateway_settings(make_database_url("uploadgw"), str(tmp_path / "store"), auth,
                                authsvc_target=f"127.0.0.1:{port}", auth_timeout=0.5)
    running = await start(settings, clock=auth.clock, migrate_first=True)
    try:
        up = await make_uploader(auth)
        async with aiohttp.ClientSession() as http:
            target = types.SimpleNamespace(http=http, upload_url=running.url + "/legacy/")
            status, reason, _ = await post_upload(target, make_wheel(tmp_path, "hang-pkg", "1.0"), up.token)
        assert status == 503 and "authentication service is unavailable" in reason
    finally:
        await running.stop()
        server.close()


async def test_removed_maintainer_token_is_refused(gw, tmp_path):
    """Seed workflow: remove a user from a project and their token for it stops working."""
    owner = await make_uploader(gw.auth, own=["team-pkg"])
    helper = await make_uploader(gw.auth)
    await gw.auth.admin.AddRole(admin_pb2.AdminAddRoleRequest(project_name="team-pkg", username=helper.username,
                                                              role=common_pb2.ROLE_MAINTAINER))
    scoped = await mint(gw.auth, helper.username, projects=["team-pkg"])
    assert (await twine(gw.upload_url, make_wheel(tmp_path, "team-pkg", "1.0"), password=scoped.token)).rc == 0
    await gw.auth.admin.RemoveRole(admin_pb2.AdminRemoveRoleRequest(project_name="team-pkg",
                                                                    username=helper.username))
    result = await twine(gw.upload_url, make_wheel(tmp_path, "team-pkg", "1.1"), password=scoped.token)
    assert result.rc != 0 and "403" in result.flat and "no Owner or Maintainer role" in result.flat, \
        result.output
    assert owner.username != helper.username
