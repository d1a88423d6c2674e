"""pip and uv (real subprocesses) installing from the gateway; the private index setting."""

from __future__ import annotations

import pathlib
import sys

import pytest

from gatehouse.auth.v1 import admin_pb2
from tests.uploadgw.conftest import make_uploader, run
from tests.uploadgw.dists import make_wheel
from tests.uploadgw.http_support import basic, post_upload


@pytest.fixture
def gw_overrides():
    """pip and uv read through the index's cache as deployed (uploads here show at once)."""
    return {"index_recheck_seconds": 1.0}


async def publish(gw, tmp_path, name="client-pkg", versions=("1.0", "1.1")):
    up = await make_uploader(gw.auth)
    for version in versions:
        status, reason, _ = await post_upload(gw, make_wheel(tmp_path, name, version), up.token)
        assert status == 200, reason
    return up


def pip_install(index_url: str, target, requirement: str) -> list[str]:
    return [sys.executable, "-m", "pip", "install", "--index-url", index_url, "--no-cache-dir", "--no-deps",
            "--target", str(target), requirement]


async def test_pip_installs_using_the_metadata_file(gw, tmp_path):
    await publish(gw, tmp_path)
    result = await run(pip_install(gw.url + "/simple/", tmp_path / "t", "client-pkg"))
    assert result.rc == 0, result.output
    assert (tmp_path / "t" / "client_pkg" / "__init__.py").read_text().startswith('__version__ = "1.1"')
    assert gw.requests_to("simple_project", 200) >= 1
    assert gw.requests_to("file_metadata", 200) >= 1
    assert gw.requests_to("file", 200) == 1


async def test_uv_installs(gw, tmp_path):
    """uv is in the locked test extra, so it sits next to this Python."""
    await publish(gw, tmp_path)
    result = await run([str(pathlib.Path(sys.executable).parent / "uv"), "pip", "install", "--no-cache", "--index-url", gw.url + "/simple/",
                        "--target", str(tmp_path / "t"), "--python", sys.executable, "client-pkg==1.0"])
    assert result.rc == 0, result.output
    assert (tmp_path / "t" / "client_pkg" / "__init__.py").read_text().startswith('__version__ = "1.0"')
    assert gw.requests_to("file_metadata", 200) >= 1


class TestPrivateIndex:
    @pytest.fixture
    def gw_overrides(self):
        return {"index_private": True, "index_recheck_seconds": 1.0}

    async def test_reads_need_a_valid_token(self, gw, tmp_path):
        up = await publish(gw, tmp_path)
        async with gw.http.get(gw.url + "/simple/client-pkg/") as resp:
            assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Basic realm=")
            assert "private" in resp.reason
        async with gw.http.get(gw.url + "/simple/client-pkg/", headers={"Authorization": basic(up.token)}) as resp:
            assert resp.status == 200 and "Authorization" in resp.headers["Vary"]
            assert resp.headers["Cache-Control"].startswith("private")
        async with gw.http.get(gw.url + "/simple/", headers={"Authorization": basic(up.token + "x")}) as resp:
            assert resp.status == 401
        await gw.auth.admin.RevokeToken(admin_pb2.AdminRevokeTokenRequest(token_id=up.token_id))
        async with gw.http.get(gw.url + "/simple/", headers={"Authorization": basic(up.token)}) as resp:
            assert resp.status == 401 and "deleted" in resp.reason

    async def test_pip_with_and_without_the_token(self, gw, tmp_path):
        up = await publish(gw, tmp_path)
        denied = await run(pip_install(gw.url + "/simple/", tmp_path / "t1", "client-pkg"))
        assert denied.rc != 0 and "No matching distribution" in denied.output
        assert gw.requests_to("simple_project", 401) >= 1
        authed = gw.url.replace("http://", f"http://__token__:{up.token}@") + "/simple/"
        result = await run(pip_install(authed, tmp_path / "t2", "client-pkg==1.0"))
        assert result.rc == 0, result.output
        assert gw.requests_to("file", 200) == 1 and gw.requests_to("file", 401) == 0

    async def test_files_need_the_token_too(self, gw, tmp_path):
        up = await publish(gw, tmp_path, versions=("1.0",))
        async with gw.http.get(gw.url + "/simple/client-pkg/", headers={
                "Authorization": basic(up.token), "Accept": "application/vnd.pypi.simple.v1+json"}) as resp:
            url = (await resp.json(content_type=None))["files"][0]["url"].removeprefix("../..")
        async with gw.http.get(gw.url + url) as resp:
            assert resp.status == 401
        async with gw.http.get(gw.url + url, headers={"Authorization": f"Bearer {up.token}"}) as resp:
            assert resp.status == 200


@pytest.mark.parametrize("backend", ["s3"], indirect=True)
class TestPrivateIndexRedirectingToTheBucket:
    """Downloads answered with a presigned URL of the bucket, after the private index's check."""

    @pytest.fixture
    def gw_overrides(self):
        return {"index_private": True}

    @pytest.fixture
    def s3_overrides(self):
        return {"downloads": "redirect", "presign_seconds": 20}

    async def test_a_file_is_a_short_lived_redirect_given_only_after_the_check(self, gw, tmp_path):
        up = await publish(gw, tmp_path, versions=("1.0",))
        async with gw.http.get(gw.url + "/simple/client-pkg/", headers={
                "Authorization": basic(up.token), "Accept": "application/vnd.pypi.simple.v1+json"}) as resp:
            url = (await resp.json(content_type=None))["files"][0]["url"].removeprefix("../..")
        async with gw.http.get(gw.url + url, allow_redirects=False) as resp:
            assert resp.status == 401 and "Location" not in resp.headers
        async with gw.http.get(gw.url + url, allow_redirects=False, headers={"Authorization": basic(up.token)}) as resp:
            assert resp.status == 302 and resp.headers["Cache-Control"] == "no-store"
            location = resp.headers["Location"]
        assert location.startswith(gw.settings.s3.endpoint_url + "/") and "X-Amz-Expires=20" in location
        async with gw.http.get(location) as resp:
            assert resp.status == 200 and (await resp.read())[:2] == b"PK"

    async def test_pip_follows_the_redirect(self, gw, tmp_path):
        up = await publish(gw, tmp_path)
        authed = gw.url.replace("http://", f"http://__token__:{up.token}@") + "/simple/"
        result = await run(pip_install(authed, tmp_path / "t", "client-pkg==1.0"))
        assert result.rc == 0, result.output
        assert (tmp_path / "t" / "client_pkg" / "__init__.py").read_text().startswith('__version__ = "1.0"')
        assert gw.requests_to("file", 302) == 1 and gw.requests_to("file", 200) == 0
