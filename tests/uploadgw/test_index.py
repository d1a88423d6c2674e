"""The simple index: PEP 503 HTML and PEP 691 JSON, content negotiation, redirects, PEP 592/658/700,
file serving and cache validation."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile

import pytest
from sqlalchemy import select, update
from yarl import URL

from tests.uploadgw.conftest import BACKENDS, make_uploader
from tests.uploadgw.dists import make_sdist, make_wheel
from tests.uploadgw.http_support import post_upload
from uploadgw import admin
from uploadgw.models import File

JSON = "application/vnd.pypi.simple.v1+json"
V1_HTML = "application/vnd.pypi.simple.v1+html"
PIP_ACCEPT = f"{JSON}, {V1_HTML}; q=0.1, text/html; q=0.01"


@pytest.fixture
async def published(gw, tmp_path):
    """Index_Pkg 1.0 (wheel + sdist, Requires-Python with characters HTML must escape) and 2.0."""
    up = await make_uploader(gw.auth)
    files = [make_wheel(tmp_path, "Index_Pkg", "1.0", requires_python="<4,>=3.8"),
             make_sdist(tmp_path, "Index_Pkg", "1.0"),
             make_wheel(tmp_path, "Index_Pkg", "2.0", requires_python=None)]
    for path in files:
        status, reason, _ = await post_upload(gw, path, up.token)
        assert status == 200, reason
    return {p.name: p for p in files}


async def get(gw, path: str, accept: str | None = None, **kw):
    headers = {"Accept": accept} if accept else {}
    headers.update(kw.pop("headers", {}))
    async with gw.http.get(gw.url + path, headers=headers, allow_redirects=False, **kw) as resp:
        return resp.status, resp.headers, await resp.read()


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_json_project_page(gw, published):
    status, headers, body = await get(gw, "/simple/index-pkg/", JSON)
    assert status == 200 and headers["Content-Type"] == JSON and "Accept" in headers["Vary"]
    page = json.loads(body)
    assert page["meta"]["api-version"] == "1.1" and page["name"] == "index-pkg"
    assert page["versions"] == ["1.0", "2.0"]
    by_name = {f["filename"]: f for f in page["files"]}
    assert set(by_name) == set(published)
    for name, path in published.items():
        entry = by_name[name]
        data = path.read_bytes()
        assert entry["hashes"] == {"sha256": hashlib.sha256(data).hexdigest()}
        assert entry["size"] == len(data) and entry["yanked"] is False
        assert entry["upload-time"].endswith("Z") and "T" in entry["upload-time"]
        url = URL(gw.url + "/simple/index-pkg/").join(URL(entry["url"]))
        async with gw.http.get(url) as resp:
            assert resp.status == 200 and await resp.read() == data
    wheel = by_name["Index_Pkg-1.0-py3-none-any.whl"]
    assert wheel["requires-python"] == "<4,>=3.8"
    with zipfile.ZipFile(published["Index_Pkg-1.0-py3-none-any.whl"]) as zf:
        metadata = zf.read("Index_Pkg-1.0.dist-info/METADATA")
    assert wheel["core-metadata"] == {"sha256": hashlib.sha256(metadata).hexdigest()}
    assert wheel["dist-info-metadata"] == wheel["core-metadata"]
    assert by_name["Index_Pkg-1.0.tar.gz"]["core-metadata"] is False
    assert "requires-python" not in by_name["Index_Pkg-2.0-py3-none-any.whl"]
    async with gw.http.get(URL(gw.url + "/simple/index-pkg/").join(URL(wheel["url"] + ".metadata"))) as resp:
        assert resp.status == 200 and await resp.read() == metadata


async def test_html_project_page(gw, published):
    status, headers, body = await get(gw, "/simple/index-pkg/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    html = body.decode()
    assert '<meta name="pypi:repository-version" content="1.1">' in html
    assert 'data-requires-python="&lt;4,&gt;=3.8"' in html
    sha = hashlib.sha256(published["Index_Pkg-1.0.tar.gz"].read_bytes()).hexdigest()
    assert f'Index_Pkg-1.0.tar.gz#sha256={sha}"' in html
    assert html.count("data-core-metadata=") == 2 and html.count("data-dist-info-metadata=") == 2
    status, headers, _ = await get(gw, "/simple/index-pkg/", V1_HTML)
    assert headers["Content-Type"] == V1_HTML


async def test_content_negotiation(gw, published):
    for accept, expected in [
        (PIP_ACCEPT, JSON),
        ("text/html", "text/html; charset=utf-8"),
        (f"{V1_HTML}, {JSON}; q=0.5", V1_HTML),
        ("application/vnd.pypi.simple.latest+json", JSON),
        ("*/*", "text/html; charset=utf-8"),
    ]:
        status, headers, _ = await get(gw, "/simple/index-pkg/", accept)
        assert status == 200 and headers["Content-Type"] == expected, accept


async def test_unservable_accept_is_406_and_format_query_wins(gw, published):
    status, _, _ = await get(gw, "/simple/index-pkg/", "application/xml")
    assert status == 406
    status, headers, _ = await get(gw, f"/simple/index-pkg/?format={JSON}", "text/html")
    assert status == 200 and headers["Content-Type"] == JSON


async def test_redirects_to_the_normalised_url(gw, published):
    status, headers, _ = await get(gw, "/simple/Index_Pkg/")
    assert status == 301 and headers["Location"] == "../index-pkg/"
    status, headers, _ = await get(gw, "/simple/index.pkg")
    assert status == 301 and headers["Location"] == "index-pkg/"
    async with gw.http.get(gw.url + "/simple/INDEX--PKG/", headers={"Accept": JSON}) as resp:
        assert resp.status == 200 and resp.url.path == "/simple/index-pkg/"
    status, _, body = await get(gw, "/simple/no-such-thing/")
    assert status == 404 and b"no-such-thing" in body


async def test_etag_follows_the_project_serial(gw, published, tmp_path):
    status, headers, _ = await get(gw, "/simple/index-pkg/", JSON)
    etag = headers["ETag"]
    status, _, body = await get(gw, "/simple/index-pkg/", JSON, headers={"If-None-Match": etag})
    assert status == 304 and body == b""
    up = await make_uploader(gw.auth)
    newer = make_wheel(tmp_path, "Index_Pkg", "3.0")
    assert (await post_upload(gw, newer, up.token))[0] == 403  # not an owner of index-pkg
    await admin.yank(gw.settings, "index-pkg", "2.0", "broken build")
    status, headers, body = await get(gw, "/simple/index-pkg/", JSON, headers={"If-None-Match": etag})
    assert status == 200 and headers["ETag"] != etag and b"broken build" in body


async def test_yanked_releases(gw, published):
    await admin.yank(gw.settings, "index-pkg", "1.0", 'use 2.0 <"now">')
    await admin.yank(gw.settings, "index-pkg", "2.0")
    _, _, body = await get(gw, "/simple/index-pkg/", JSON)
    page = json.loads(body)
    yanked = {f["filename"]: f["yanked"] for f in page["files"]}
    assert yanked["Index_Pkg-1.0.tar.gz"] == 'use 2.0 <"now">'
    assert yanked["Index_Pkg-2.0-py3-none-any.whl"] is True
    _, _, body = await get(gw, "/simple/index-pkg/")
    assert body.decode().count('data-yanked="use 2.0 &lt;&quot;now&quot;&gt;"') == 2
    assert body.decode().count('data-yanked=""') == 1
    await admin.unyank(gw.settings, "index-pkg", "1.0")
    _, _, body = await get(gw, "/simple/index-pkg/", JSON)
    assert {f["yanked"] for f in json.loads(body)["files"]} == {False, True}
    tags = [e.tag for e in await gw.events("project:release:yank", "project:release:unyank")]
    assert tags == ["project:release:yank", "project:release:yank", "project:release:unyank"]


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_files_are_served_immutable_with_their_type(gw, published):
    _, _, body = await get(gw, "/simple/index-pkg/", JSON)
    files = {f["filename"]: f["url"] for f in json.loads(body)["files"]}
    for name, ctype in (("Index_Pkg-1.0-py3-none-any.whl", "application/zip"),
                        ("Index_Pkg-1.0.tar.gz", "application/gzip")):
        path = files[name].removeprefix("../..")
        status, headers, data = await get(gw, path)
        assert status == 200 and headers["Content-Type"] == ctype and "Content-Encoding" not in headers
        assert "immutable" in headers["Cache-Control"] and data == published[name].read_bytes()
        async with gw.http.head(gw.url + path) as resp:
            assert resp.status == 200 and resp.content_length == len(data) and await resp.read() == b""
        wrong = path.rsplit("/", 1)[0] + "/other_name-1.0.tar.gz"
        assert (await get(gw, wrong))[0] == 404
    sdist_url = files["Index_Pkg-1.0.tar.gz"].removeprefix("../..")
    assert (await get(gw, sdist_url + ".metadata"))[0] == 404  # sdists have no PEP 658 file here


async def test_root_listing(gw, published):
    status, headers, body = await get(gw, "/simple/", JSON)
    assert status == 200 and json.loads(body)["projects"] == [{"name": "Index-Pkg"}]
    status, headers, body = await get(gw, "/simple/")
    assert '<a href="index-pkg/">Index-Pkg</a>' in body.decode()


async def test_files_stored_under_the_earlier_layout_are_still_served(gw, published):
    """Earlier versions kept blobs under `ab/cd/<name>`: their URLs keep working, and the full sweep
    leaves them alone."""
    filename = "Index_Pkg-1.0-py3-none-any.whl"
    store = gw.gateway.store
    async with gw.gateway.db() as session:
        key = (await session.execute(select(File.path).where(File.filename == filename))).scalar_one()
        first, name = key.split("/")
        earlier = f"{first}/{name[2:4]}/{name}"
        (store.blobs / first / name[2:4]).mkdir(exist_ok=True)
        os.rename(store.blobs / key, store.blobs / earlier)
        await session.execute(update(File).where(File.path == key).values(path=earlier))
        await session.commit()
    status, headers, data = await get(gw, f"/files/{earlier}/{filename}")
    assert status == 200 and data == published[filename].read_bytes()
    status, _, metadata = await get(gw, f"/files/{earlier}/{filename}.metadata")
    assert status == 200 and b"Name: Index_Pkg" in metadata
    assert (await get(gw, f"/files/{key}/{filename}"))[0] == 404  # no longer there
    assert await gw.gateway.releases.collect_orphan_blobs(0) == 0 and await store.exists(earlier)
