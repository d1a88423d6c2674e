"""Size limits: per file and per project, operator overrides, refusal from the declared length before
the body is read, and a body cut off when it grows past the limit."""

from __future__ import annotations

import os

import pytest

from tests.uploadgw.conftest import make_uploader, twine
from tests.uploadgw.dists import make_wheel
from tests.uploadgw.http_support import basic, encode, raw_exchange, twine_fields
from tests.uploadgw.test_upload_http import nothing_stored
from uploadgw import admin

FILE_LIMIT = 300_000
PROJECT_LIMIT = 700_000


@pytest.fixture
def gw_overrides():
    return {"max_file_size": FILE_LIMIT, "max_project_size": PROJECT_LIMIT, "max_form_size": 64 * 1024}


def big_wheel(tmp_path, name: str, version: str, size: int):
    folder = tmp_path / f"{name}-{version}"
    folder.mkdir()
    return make_wheel(folder, name, version, payload=os.urandom(size))


async def test_declared_length_over_the_limit_is_refused_before_reading(gw):
    up = await make_uploader(gw.auth)
    head = (f"POST /legacy/ HTTP/1.1\r\nHost: x\r\nAuthorization: {basic(up.token)}\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 50000000\r\n\r\n").encode()
    answer = await raw_exchange(gw.running.port, head, [])
    assert answer.startswith(b"HTTP/1.1 413 File too large. The limit is 293 KiB per file.")


@pytest.mark.parametrize("gw_overrides", [{"max_file_size": 4 * 1024 * 1024}])
async def test_declared_length_over_the_project_limit_is_refused_before_the_file(gw, tmp_path):
    """The body is within the global limit, but not the project's: refused once the metadata is read.

    (Bodies up to 1 MiB are read whole before this check; this one is larger.)"""
    up = await make_uploader(gw.auth)
    await admin.set_project_limits(gw.settings, "decl-pkg", file_size_limit=1024 * 1024)
    wheel = big_wheel(tmp_path, "decl-pkg", "1.0", 1000)
    ctype, fields_only, _ = encode(twine_fields(wheel), wheel.name, None)
    head = (f"POST /legacy/ HTTP/1.1\r\nHost: x\r\nAuthorization: {basic(up.token)}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(fields_only) + 1536 * 1024}\r\n\r\n").encode()
    # The start of the file follows the fields, as from any client; the rest is never sent.
    answer = await raw_exchange(gw.running.port, head, [fields_only, os.urandom(100_000)])
    assert answer.startswith(b"HTTP/1.1 413 File too large. Limit for project 'decl-pkg' is 1 MiB.")
    await nothing_stored(gw)


async def test_a_body_growing_past_the_limit_is_cut_off(gw, tmp_path):
    up = await make_uploader(gw.auth)
    wheel = big_wheel(tmp_path, "grow-pkg", "1.0", 1000)
    ctype, head_part, _ = encode(twine_fields(wheel), wheel.name, None)

    async def endless():
        yield head_part
        for _ in range(100):
            yield os.urandom(64 * 1024)

    async with gw.http.post(gw.upload_url, data=endless(), headers={
            "Authorization": basic(up.token), "Content-Type": ctype}) as resp:
        assert resp.status == 413 and resp.reason == "File too large. Limit for project 'grow-pkg' is 293 KiB."
    await nothing_stored(gw)


async def test_twine_shows_the_file_limit(gw, tmp_path):
    up = await make_uploader(gw.auth)
    result = await twine(gw.upload_url, big_wheel(tmp_path, "huge-pkg", "1.0", FILE_LIMIT + 50_000),
                         password=up.token)
    assert result.rc != 0
    assert "413" in result.flat and "File too large. Limit for project 'huge-pkg'" in result.flat, result.output
    await nothing_stored(gw)


async def test_project_total_limit(gw, tmp_path):
    up = await make_uploader(gw.auth)
    for version in ("1.0", "2.0"):
        result = await twine(gw.upload_url, big_wheel(tmp_path, "total-pkg", version, 250_000), password=up.token)
        assert result.rc == 0, result.output
    result = await twine(gw.upload_url, big_wheel(tmp_path, "total-pkg", "3.0", 250_000), password=up.token)
    assert result.rc != 0 and "413" in result.flat, result.output
    assert "Project size too large. Limit for project 'total-pkg' total size is 683.6 KiB" in result.flat


async def test_operator_overrides_per_project(gw, tmp_path):
    up = await make_uploader(gw.auth)
    await admin.set_project_limits(gw.settings, "Raised_Pkg", file_size_limit=2_000_000, total_size_limit=3_000_000)
    assert await admin.get_project_limits(gw.settings, "raised-pkg") == (2_000_000, 3_000_000)
    result = await twine(gw.upload_url, big_wheel(tmp_path, "raised-pkg", "1.0", 1_500_000), password=up.token)
    assert result.rc == 0, result.output
    # Declared larger than the default limit, but allowed for this project: not refused from the headers.
    await admin.set_project_limits(gw.settings, "lowered-pkg", file_size_limit=10_000)
    result = await twine(gw.upload_url, big_wheel(tmp_path, "lowered-pkg", "1.0", 20_000), password=up.token)
    assert result.rc != 0 and "Limit for project 'lowered-pkg' is 9.8 KiB" in result.flat, result.output
    await admin.set_project_limits(gw.settings, "lowered-pkg")
    assert await admin.get_project_limits(gw.settings, "lowered-pkg") == (FILE_LIMIT, PROJECT_LIMIT)
    result = await twine(gw.upload_url, big_wheel(tmp_path, "lowered-pkg", "1.1", 20_000), password=up.token)
    assert result.rc == 0, result.output
