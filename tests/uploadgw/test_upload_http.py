"""The upload API at the HTTP level: credentials from headers, validation messages, bad archives,
interrupted bodies. Requests are twine's own fields (built by twine's library), then altered."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import tarfile
import zipfile

import pytest
from sqlalchemy import func, select

from tests.uploadgw.conftest import BACKENDS, make_uploader
from tests.uploadgw.dists import make_sdist, make_wheel, metadata_text
from tests.uploadgw.http_support import basic, encode, post_upload, raw_exchange, replace_field, twine_fields
from uploadgw.models import File, Filename, Project, Release


async def nothing_stored(gw) -> None:
    assert await gw.stored_blobs() == [] and await gw.temp_files() == []
    async with gw.gateway.db() as session:
        for model in (File, Filename, Release):
            assert (await session.execute(select(func.count()).select_from(model))).scalar() == 0


async def test_no_credentials_is_403_with_the_way_out(gw, tmp_path):
    status, reason, body = await post_upload(gw, make_wheel(tmp_path, "anon-pkg", "1.0"), None)
    assert status == 403 and "__token__" in reason and "__token__" in body
    await nothing_stored(gw)


@pytest.mark.parametrize("scheme", ["token", "Bearer"])
async def test_token_and_bearer_schemes(gw, tmp_path, scheme):
    up = await make_uploader(gw.auth)
    status, reason, _ = await post_upload(gw, make_wheel(tmp_path, "scheme-pkg", "1.0"), None,
                                          headers={"Authorization": f"{scheme} {up.token}"})
    assert (status, reason) == (200, "OK")


async def test_malformed_authorization_is_403(gw, tmp_path):
    wheel = make_wheel(tmp_path, "bad-auth", "1.0")
    for header in ["Basic !!!", "Basic " + "X19fdG9rZW5fXzo=", "Digest abc", "token"]:
        status, reason, _ = await post_upload(gw, wheel, None, headers={"Authorization": header})
        assert status == 403 and "authentication" in reason, header


async def test_other_username_is_told_to_use_a_token(gw, tmp_path):
    status, reason, _ = await post_upload(gw, make_wheel(tmp_path, "pw-pkg", "1.0"), None,
                                          headers={"Authorization": basic("secret", user="alice")})
    assert status == 403 and reason.startswith("Username/password authentication is not supported")


async def test_credentials_are_checked_before_the_body(gw):
    """A refusal from the headers alone: the answer comes while the body has not been sent."""
    head = (b"POST /legacy/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 1000000\r\n\r\n")
    answer = await raw_exchange(gw.running.port, head, [b"--b\r\n"])
    assert answer.startswith(b"HTTP/1.1 403 Invalid or non-existent authentication information")


def _fields(tmp_path, **changes):
    wheel = make_wheel(tmp_path, "form-pkg", "1.0")
    fields = twine_fields(wheel)
    for key, value in changes.items():
        fields = replace_field(fields, key, value)
    return wheel, fields


FORM_CASES = [
    ("name", "-bad-", "is an invalid value for Name"),
    ("version", "1.0+local", "Can't use PEP 440 local versions"),
    ("version", "one", "is an invalid value for Version"),
    ("metadata_version", "9.9", "Use a known metadata version"),
    ("filetype", "bdist_egg", "Uploading bdist_egg files is not supported"),
    ("filetype", "sdist", "Use 'source' as Python version for an sdist"),
    ("pyversion", None, "Python version is required"),
    ("sha256_digest", "00" * 32, "The digest supplied does not match"),
    ("sha256_digest", "xyz", "hex-encoded SHA256"),
    ("license_expression", "XYZ", "is an invalid value for License-Expression"),
    ("requires_python", ">=3.8,<<4", "is an invalid value for Requires-Python"),
    ("summary", "two\nlines", "Use a single line only"),
    (":action", "submit", "pre-registration is no longer required"),
    (":action", None, "':action=file_upload'"),
    ("protocol_version", "2", "Unknown protocol version"),
]


async def test_form_refusals_say_what_is_wrong(gw, tmp_path):
    up = await make_uploader(gw.auth)
    for field, value, message in FORM_CASES:
        wheel, fields = _fields(tmp_path, **{field: value})
        status, reason, body = await post_upload(gw, wheel, up.token, fields=fields)
        assert status in (400, 410) and message in reason, (field, value, reason)
        assert message in body
    await nothing_stored(gw)


async def test_only_strong_digests_count(gw, tmp_path):
    up = await make_uploader(gw.auth)
    wheel, fields = _fields(tmp_path, sha256_digest=None, blake2_256_digest=None)
    fields.append(("md5_digest", "0" * 32))
    status, reason, _ = await post_upload(gw, wheel, up.token, fields=fields)
    assert status == 400 and "at least one strong message digest" in reason


async def test_every_supplied_digest_is_checked(gw, tmp_path):
    up = await make_uploader(gw.auth)
    wheel, fields = _fields(tmp_path)
    good_md5 = hashlib.md5(wheel.read_bytes()).hexdigest()
    status, _, _ = await post_upload(gw, wheel, up.token, fields=[*fields, ("md5_digest", "f" * 32)])
    assert status == 400
    await nothing_stored(gw)
    status, _, _ = await post_upload(gw, wheel, up.token, fields=[*fields, ("md5_digest", good_md5)])
    assert status == 200
    async with gw.gateway.db() as session:
        assert (await session.execute(select(File.md5))).scalar_one() == good_md5


FILENAME_CASES = [
    ("../form_pkg-1.0-py3-none-any.whl", "'/' or '\\' in the name"),
    ("form_pkg-1.0-py3-none-any.exe", "Invalid file extension"),
    ("other_pkg-1.0-py3-none-any.whl", "Start filename for 'form-pkg' with 'form_pkg'"),
    ("form_pkg-2.0-py3-none-any.whl", "Version in filename should be '1.0' not '2.0'"),
    ("form_pkg-1.0-any.whl", "Invalid wheel filename"),
    ("form_pkg-1.0.tar.gz", "Extension .tar.gz is invalid for filetype bdist_wheel"),
]


async def test_filename_refusals(gw, tmp_path):
    up = await make_uploader(gw.auth)
    wheel, fields = _fields(tmp_path)
    for filename, message in FILENAME_CASES:
        status, reason, _ = await post_upload(gw, wheel, up.token, fields=fields, filename=filename)
        assert status == 400 and message in reason, (filename, reason)
    await nothing_stored(gw)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_metadata_inside_must_match_the_upload(gw, tmp_path):
    up = await make_uploader(gw.auth)
    wheel = make_wheel(tmp_path, "meta-pkg", "1.0", metadata=metadata_text("meta-pkg", "2.0"))
    fields = replace_field(twine_fields(make_wheel(tmp_path / "..", "meta-pkg", "1.0")), "sha256_digest", None)
    fields = replace_field(fields, "blake2_256_digest", None)
    fields.append(("sha256_digest", hashlib.sha256(wheel.read_bytes()).hexdigest()))
    status, reason, _ = await post_upload(gw, wheel, up.token, fields=fields)
    assert status == 400 and "metadata names 'meta-pkg' version '2.0'" in reason, reason
    await nothing_stored(gw)


def _refresh_digests(fields, data: bytes):
    fields = replace_field(replace_field(fields, "sha256_digest", None), "blake2_256_digest", None)
    return [*fields, ("sha256_digest", hashlib.sha256(data).hexdigest())]


@pytest.mark.parametrize("gw_overrides", [{"compression_ratio_min_size": 1024 * 1024}])
async def test_zip_bomb_is_refused(gw, tmp_path):
    up = await make_uploader(gw.auth)
    good = make_wheel(tmp_path, "bomb-pkg", "1.0")
    bomb_dir = tmp_path / "bomb"
    bomb_dir.mkdir()
    bomb = make_wheel(bomb_dir, "bomb-pkg", "1.0")
    with zipfile.ZipFile(bomb, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb_pkg/zeros.bin", b"\0" * (8 * 1024 * 1024))
    status, reason, _ = await post_upload(gw, bomb, up.token, fields=_refresh_digests(twine_fields(good),
                                                                                       bomb.read_bytes()))
    assert status == 400 and "more than 50 times its size" in reason, reason
    await nothing_stored(gw)


async def test_wheel_with_unsafe_member_names_is_refused(gw, tmp_path):
    up = await make_uploader(gw.auth)
    for number, member in enumerate(["../escape.py", "/etc/passwd", "trav_pkg\\win.py"]):
        folder = tmp_path / str(number)
        folder.mkdir()
        wheel = make_wheel(folder, "trav-pkg", "1.0", extra_files={member: b"x"})
        status, reason, _ = await post_upload(gw, wheel, up.token, fields=twine_fields(wheel))
        assert status == 400 and "Invalid distribution file" in reason, (member, reason)
    await nothing_stored(gw)


async def test_sdist_with_link_outside_is_refused(gw, tmp_path):
    up = await make_uploader(gw.auth)
    link = tarfile.TarInfo("link_pkg-1.0/evil")
    link.type, link.linkname = tarfile.SYMTYPE, "../../etc/passwd"
    sdist = make_sdist(tmp_path, "link-pkg", "1.0", members=[link])
    status, reason, _ = await post_upload(gw, sdist, up.token, fields=twine_fields(sdist))
    assert status == 400 and "points outside the archive" in reason, reason


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_garbage_named_like_a_wheel_is_400_not_500(gw, tmp_path):
    up = await make_uploader(gw.auth)
    good = make_wheel(tmp_path, "junk-pkg", "1.0")
    junk = os.urandom(4000)
    status, reason, _ = await post_upload(gw, good, up.token, fields=_refresh_digests(twine_fields(good), junk),
                                          content=junk)
    assert status == 400 and "Invalid distribution file" in reason
    await nothing_stored(gw)


async def test_garbage_body_is_400(gw):
    up = await make_uploader(gw.auth)
    for size in (3000, 3 * 1024 * 1024):  # read whole, and streamed
        async with gw.http.post(gw.upload_url, data=os.urandom(size), headers={
                "Authorization": basic(up.token), "Content-Type": "multipart/form-data; boundary=zz"}) as resp:
            assert resp.status == 400, size
    async with gw.http.post(gw.upload_url, data=b"name=x", headers={
            "Authorization": basic(up.token), "Content-Type": "application/x-www-form-urlencoded"}) as resp:
        assert resp.status == 400 and "multipart/form-data" in resp.reason


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_one_sdist_per_release(gw, tmp_path):
    up = await make_uploader(gw.auth)
    tar = make_sdist(tmp_path, "one-sdist", "1.0")
    status, _, _ = await post_upload(gw, tar, up.token)
    assert status == 200
    zpath = tmp_path / "one_sdist-1.0.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("one_sdist-1.0/PKG-INFO", metadata_text("one-sdist", "1.0"))
    fields = _refresh_digests(twine_fields(tar), zpath.read_bytes())
    status, reason, _ = await post_upload(gw, zpath, up.token, fields=fields)
    assert status == 400 and reason == "Only one sdist may be uploaded per release."
    assert len(await gw.stored_blobs()) == 1 and await gw.temp_files() == []


async def test_an_upload_that_took_too_long_to_record_is_refused(gw, tmp_path):
    """The sweeper removes unrecorded blobs by age: a blob older than half that age is never recorded."""
    up = await make_uploader(gw.auth)
    wheel = make_wheel(tmp_path, "slow-pkg", "1.0")
    gw.gateway.uploads.publish_within = -1.0
    status, reason, _ = await post_upload(gw, wheel, up.token)
    assert status == 400 and reason.startswith("The upload took too long"), reason
    await nothing_stored(gw)
    gw.gateway.uploads.publish_within = 60.0
    status, reason, _ = await post_upload(gw, wheel, up.token)
    assert status == 200, reason


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_interrupted_upload_leaves_nothing(gw, tmp_path):
    up = await make_uploader(gw.auth)
    for number, size in enumerate((3 * 1024 * 1024, 200 * 1024)):  # streamed, and read whole
        folder = tmp_path / str(number)
        folder.mkdir()
        wheel = make_wheel(folder, "cut-pkg", f"1.{number}", payload=os.urandom(size))
        ctype, body, tail = encode(twine_fields(wheel), wheel.name, wheel.read_bytes())
        head = (f"POST /legacy/ HTTP/1.1\r\nHost: x\r\nAuthorization: {basic(up.token)}\r\n"
                f"Content-Type: {ctype}\r\nContent-Length: {len(body) + len(tail)}\r\n\r\n").encode()
        await raw_exchange(gw.running.port, head, [body[: len(body) - size // 3]], read_response=False, pause=0.3)
        for _ in range(100):
            if gw.requests_to("upload") >= number + 1:
                break
            await asyncio.sleep(0.05)
        assert gw.requests_to("upload", 400) == number + 1
        await nothing_stored(gw)
    async with gw.gateway.db() as session:
        assert (await session.execute(select(func.count()).select_from(Project))).scalar() == 0


async def test_fields_after_content_are_ignored_and_content_first_is_refused(gw, tmp_path):
    up = await make_uploader(gw.auth)
    wheel = make_wheel(tmp_path, "order-pkg", "1.0")
    ctype, body, tail = encode([], wheel.name, wheel.read_bytes())
    rest = io.BytesIO()
    boundary = ctype.split("boundary=")[1]
    for name, value in twine_fields(wheel):
        rest.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode())
    data = body + b"\r\n" + rest.getvalue() + f"--{boundary}--\r\n".encode()
    async with gw.http.post(gw.upload_url, data=data, headers={"Authorization": basic(up.token),
                                                                "Content-Type": ctype}) as resp:
        assert resp.status == 400 and "':action=file_upload'" in resp.reason
    await nothing_stored(gw)


# -- small archives examined on the event loop, and those that are not ---------------------------------
async def _recorded_metadata(gw, filename: str) -> bytes | None:
    async with gw.gateway.db() as session:
        return (await session.execute(select(File.metadata_content).where(File.filename == filename))).scalar()


async def test_a_refused_token_is_told_before_a_refused_archive(gw, tmp_path):
    """A small upload's archive is examined (in a thread) while authsvc answers: a token that may
    not upload here is the answer all the same, and nothing stays stored."""
    await make_uploader(gw.auth, own=["order-pkg"])
    stranger = await make_uploader(gw.auth, own=["other-pkg"], projects=["other-pkg"])
    good = make_wheel(tmp_path, "order-pkg", "1.0")
    mismatch = make_wheel(tmp_path / "..", "order-pkg", "1.0", metadata=metadata_text("order-pkg", "2.0"))
    for content in (mismatch.read_bytes(), os.urandom(4000)):
        status, reason, _ = await post_upload(gw, good, stranger.token, content=content,
                                              fields=_refresh_digests(twine_fields(good), content))
        assert status == 403, reason
    await nothing_stored(gw)


async def test_small_wheels_with_a_long_metadata_or_many_members_are_accepted(gw, tmp_path):
    """A METADATA of about 100 KB, or 100 members, in a small upload: accepted (examined in a thread
    under the full limits), their METADATA recorded whole; and a refusal found there is the same
    refusal. (Such wheels once fell back from the event loop's tighter bounds to a thread.)"""
    up = await make_uploader(gw.auth)
    long_text = metadata_text("long-meta", "1.0") + "\n" + "A long description line.\n" * 4000
    assert 64 * 1024 < len(long_text) < 1024 * 1024
    long_meta = make_wheel(tmp_path, "long-meta", "1.0", metadata=long_text)
    many = make_wheel(tmp_path, "many-members", "1.0",
                      extra_files={f"many_members/m{i}.py": b"x = 1\n" for i in range(100)})
    assert many.stat().st_size < 1024 * 1024
    for wheel in (long_meta, many):
        status, reason, _ = await post_upload(gw, wheel, up.token)
        assert (status, reason) == (200, "OK"), wheel.name
    assert await _recorded_metadata(gw, long_meta.name) == long_text.encode()
    members = {f"many_members/m{i}.py": b"x = 1\n" for i in range(100)}
    (tmp_path / "wrong").mkdir()
    wrong = make_wheel(tmp_path / "wrong", "many-members", "1.1", metadata=metadata_text("many-members", "9.9"),
                       extra_files=members)
    fields = _refresh_digests(twine_fields(make_wheel(tmp_path, "many-members", "1.1")), wrong.read_bytes())
    status, reason, _ = await post_upload(gw, wrong, up.token, fields=fields)
    assert status == 400 and "metadata names 'many-members' version '9.9'" in reason, reason
    assert len(await gw.stored_blobs()) == 2
