"""Concurrent uploads: every answer is right, and the records stay consistent (no lost updates)."""

from __future__ import annotations

import asyncio
import zipfile

import pytest

from sqlalchemy import func, select

from tests.uploadgw.conftest import make_uploader
from tests.uploadgw.dists import make_sdist, make_wheel, metadata_text
from tests.uploadgw.http_support import post_upload, twine_fields
from tests.uploadgw.test_upload_http import _refresh_digests
from uploadgw.models import File, Project, Release


@pytest.fixture
def gw_overrides():
    """Fourteen uploads with one token at once: the per-token and per-address caps (test_edge.py) are
    off here, as these tests are about the records under concurrency."""
    return {"max_uploads_per_token": 0, "max_uploads_per_ip": 0}


async def test_parallel_uploads_to_one_project(gw, tmp_path):
    up = await make_uploader(gw.auth, own=["busy-pkg"])
    wheels = [make_wheel(tmp_path, "busy-pkg", f"1.{i}") for i in range(10)]
    twin = wheels[0]
    other = tmp_path / "other"
    other.mkdir()
    rival = make_wheel(other, "busy-pkg", "1.0", extra_files={"busy_pkg/x.py": b"x = 1\n"})
    tar = make_sdist(tmp_path, "busy-pkg", "2.0")
    zpath = tmp_path / "busy_pkg-2.0.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("busy_pkg-2.0/PKG-INFO", metadata_text("busy-pkg", "2.0"))
    uploads = [post_upload(gw, path, up.token) for path in wheels]
    uploads += [post_upload(gw, twin, up.token), post_upload(gw, rival, up.token),
                post_upload(gw, tar, up.token),
                post_upload(gw, zpath, up.token, fields=_refresh_digests(twine_fields(tar), zpath.read_bytes()))]
    results = await asyncio.gather(*uploads)
    assert [status for status, _, _ in results[1:10]] == [200] * 9
    # Three uploads of one filename: two identical, one different. Whichever content commits first
    # wins; the identical one then gets 200 (nothing new), the other content 400.
    first, twin_result, rival_result = results[0], results[10], results[11]
    outcomes = [first[0], twin_result[0], rival_result[0]]
    assert outcomes in ([200, 200, 400], [400, 400, 200]), outcomes
    for status, reason, _ in (first, twin_result, rival_result):
        assert status == 200 or reason.startswith("File already exists"), reason
    sdists = sorted(results[12:14])
    assert [s for s, _, _ in sdists] == [200, 400] and sdists[1][1] == "Only one sdist may be uploaded per release."
    async with gw.gateway.db() as session:
        files = (await session.execute(select(File.size))).scalars().all()
        project = (await session.execute(select(Project))).scalar_one()
        releases = (await session.execute(select(func.count()).select_from(Release))).scalar()
    assert len(files) == 11 and releases == 11  # ten wheels and one of the two sdists
    assert project.total_size == sum(files)
    assert project.serial == 11  # one bump per stored file
    assert len(await gw.events("file:add")) == 11 and len(await gw.events("project:release:add")) == 11
    # Each upload stored its bytes under a key of its own; the refused and the identical ones removed
    # theirs, and nothing is left pending.
    async with gw.gateway.db() as session:
        paths = (await session.execute(select(File.path))).scalars().all()
    assert await gw.stored_blobs() == sorted(paths) and await gw.temp_files() == []
