"""The pure parts, without servers: settings, credentials, form rules, archive bounds, negotiation."""

from __future__ import annotations

import base64
import re
import tarfile
import zipfile

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version

from gatehouse.infra.settings import SettingsError
from tests.uploadgw.dists import make_sdist, make_wheel, metadata_text
from uploadgw.errors import AuthenticationRequired, Forbidden, InvalidUpload
from uploadgw.http import credentials
from uploadgw.http.middleware import reason_phrase
from uploadgw.index.render import negotiate
from uploadgw.settings import Settings
from uploadgw.uploads import archive
from uploadgw.uploads.form import check_filename, collect_fields, parse_form
from uploadgw.uploads.service import human_size

REQUIRED = {"UPLOADGW_DATABASE_URL": "sqlite:///x.db", "UPLOADGW_STORAGE_DIR": "/tmp/s",
            "UPLOADGW_AUTHSVC_TARGET": "127.0.0.1:1", "UPLOADGW_AUTHSVC_KEY": "k",
            "UPLOADGW_EVENT_KEYS": "1:" + "ab" * 32}


def test_settings_from_env():
    settings = Settings.from_env({**REQUIRED, "UPLOADGW_LISTEN": "0.0.0.0:9000", "UPLOADGW_INDEX_PRIVATE": "yes",
                                  "UPLOADGW_MAX_FILE_SIZE": "1000"})
    assert (settings.listen_host, settings.listen_port) == ("0.0.0.0", 9000)
    assert settings.index_private and settings.max_file_size == 1000
    assert settings.max_project_size == 10 * 1024 ** 3
    for name in REQUIRED:
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({k: v for k, v in REQUIRED.items() if k != name})
    with pytest.raises(SettingsError, match="UPLOADGW_LISTEN"):
        Settings.from_env({**REQUIRED, "UPLOADGW_LISTEN": "nope"})


def test_object_store_settings_from_env():
    assert Settings.from_env(REQUIRED).s3 is None  # the local store by default
    s3 = {**REQUIRED, "UPLOADGW_STORAGE_BACKEND": "s3", "UPLOADGW_S3_BUCKET": "dists",
          "UPLOADGW_S3_ENDPOINT_URL": "http://minio:9000", "UPLOADGW_S3_PATH_STYLE": "true",
          "UPLOADGW_S3_ACCESS_KEY_ID": "AKIA", "UPLOADGW_S3_SECRET_ACCESS_KEY": "s3cr3t-value",
          "UPLOADGW_S3_DOWNLOADS": "redirect"}
    settings = Settings.from_env(s3)
    assert settings.s3 is not None and (settings.s3.bucket, settings.s3.endpoint_url) == ("dists", "http://minio:9000")
    assert settings.s3.path_style and settings.s3.downloads == "redirect" and settings.s3.presign_seconds == 30
    assert "s3cr3t-value" not in repr(settings)
    for changed, message in (({"UPLOADGW_STORAGE_BACKEND": "gcs"}, "UPLOADGW_STORAGE_BACKEND"),
                             ({"UPLOADGW_S3_BUCKET": ""}, "UPLOADGW_S3_BUCKET"),
                             ({"UPLOADGW_S3_DOWNLOADS": "proxy"}, "UPLOADGW_S3_DOWNLOADS"),
                             ({"UPLOADGW_S3_SECRET_ACCESS_KEY": ""}, "set together"),
                             ({"UPLOADGW_S3_PRESIGN_SECONDS": "0"}, "UPLOADGW_S3_PRESIGN_SECONDS")):
        with pytest.raises(SettingsError, match=message):
            Settings.from_env({**s3, **changed})
    # A private index checks every read: its presigned URLs live a minute at most.
    assert Settings.from_env({**s3, "UPLOADGW_S3_PRESIGN_SECONDS": "600"}).s3.presign_seconds == 600
    with pytest.raises(SettingsError, match="at most 60 on a private index"):
        Settings.from_env({**s3, "UPLOADGW_S3_PRESIGN_SECONDS": "600", "UPLOADGW_INDEX_PRIVATE": "yes"})


def test_https_settings_go_together():
    both = Settings.from_env({**REQUIRED, "UPLOADGW_HTTPS_CERT": "/c.pem", "UPLOADGW_HTTPS_KEY": "/k.pem"})
    assert (both.https_cert, both.https_key) == ("/c.pem", "/k.pem")
    assert Settings.from_env(REQUIRED).https_cert == ""
    for name in ("UPLOADGW_HTTPS_CERT", "UPLOADGW_HTTPS_KEY"):
        with pytest.raises(SettingsError, match="set both"):
            Settings.from_env({**REQUIRED, name: "/x.pem"})


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_credentials():
    assert credentials.upload_token(_basic("__token__", "pypi-abc")) == "pypi-abc"
    assert credentials.upload_token("token pypi-abc") == "pypi-abc"
    assert credentials.upload_token("Bearer pypi-abc") == "pypi-abc"
    with pytest.raises(Forbidden, match="Use an API token"):
        credentials.upload_token(_basic("alice", "hunter2"))
    for bad in (None, "", "Basic", "Basic ####", _basic("__token__", ""), "Negotiate x"):
        with pytest.raises(Forbidden, match="__token__"):
            credentials.upload_token(bad)
    with pytest.raises(AuthenticationRequired):
        credentials.read_token(None)


@given(st.text())
def test_reason_phrase_is_one_printable_ascii_line(message):
    phrase = reason_phrase(message)
    assert phrase and all(32 <= ord(c) < 127 for c in phrase)
    phrase.encode("latin-1")


def test_negotiation():
    assert negotiate(None) == "text"
    assert negotiate("application/vnd.pypi.simple.v1+json") == "json"
    assert negotiate("text/html;q=0.9, application/vnd.pypi.simple.v1+html;q=0.9") == "html"
    assert negotiate("application/json") is None
    assert negotiate("application/vnd.pypi.simple.v1+json;q=0") is None
    assert negotiate("text/html", "application/vnd.pypi.simple.v1 json") == "json"


def test_human_size():
    assert [human_size(n) for n in (10, 1024, 1536, 100 * 1024 ** 2, 10 * 1024 ** 3)] == [
        "10 bytes", "1 KiB", "1.5 KiB", "100 MiB", "10 GiB"]


def _form(**changes):
    fields = {":action": "file_upload", "protocol_version": "1", "metadata_version": "2.4", "name": "Foo.Bar",
              "version": "1.0", "filetype": "bdist_wheel", "pyversion": "py3", "sha256_digest": "a" * 64}
    fields.update(changes)
    return parse_form(collect_fields((k, v) for k, v in fields.items() if v is not None))


def test_form_normalises_name_and_version():
    form = _form(version="1.0.0.post0")
    assert form.canonical_name == "foo-bar" and form.version == "1.0.0.post0"
    assert _form(version="01.00").canonical_version == "1"
    assert _form(filetype="sdist", pyversion=None).pyversion == "source"
    with pytest.raises(InvalidUpload, match="Null bytes"):
        _form(summary="a\x00b")
    with pytest.raises(InvalidUpload, match="sent 2 times"):
        parse_form(collect_fields([(":action", "file_upload"), ("metadata_version", "2.1"), ("name", "a"),
                                   ("name", "b")]))


@given(st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,20}[A-Za-z0-9])?", fullmatch=True),
       st.sampled_from(["1.0", "2!3.4.5rc1", "0.1.dev3", "1.0.post2"]))
def test_wheel_filenames_of_the_project_are_accepted(name, version):
    form = _form(name=name, version=version)
    check_filename(f"{form.canonical_name.replace('-', '_')}-{version}-py3-none-any.whl", form)
    check_filename(f"{re.sub(r'[-_.]+', '_', name)}-{Version(version)}-1-py3-none-any.whl", form)


def test_archive_bounds(tmp_path):
    limits = archive.ArchiveLimits(max_members=20, max_metadata_size=2000, ratio_min_size=10_000, max_ratio=10)
    wheel = make_wheel(tmp_path, "ok-pkg", "1.0")
    info = archive.inspect(str(wheel), filename=wheel.name, filetype="bdist_wheel", limits=limits,
                           size=wheel.stat().st_size)
    assert b"Name: ok-pkg" in info.wheel_metadata

    def refused(path, match):
        with pytest.raises(InvalidUpload, match=match):
            archive.inspect(str(path), filename=path.name, filetype="sdist" if path.name.endswith("gz") else
                            "bdist_wheel", limits=limits, size=path.stat().st_size)

    many = tmp_path / "many"
    many.mkdir()
    refused(make_wheel(many, "ok-pkg", "1.0", extra_files={f"ok_pkg/m{i}.py": b"" for i in range(30)}),
            "more than 20 members")
    huge = tmp_path / "huge"
    huge.mkdir()
    refused(make_wheel(huge, "ok-pkg", "1.0", metadata=metadata_text("ok-pkg", "1.0") + "x" * 5000),
            "METADATA is larger")
    nometa = tmp_path / "nometa"
    nometa.mkdir()
    refused(make_wheel(nometa, "ok-pkg", "1.0", omit_metadata=True), "does not contain the required METADATA")
    dev = tarfile.TarInfo("ok_pkg-1.0/dev")
    dev.type = tarfile.CHRTYPE
    refused(make_sdist(tmp_path, "ok-pkg", "1.0", members=[dev]), "not a regular file")
    hard = tarfile.TarInfo("ok_pkg-1.0/hard")
    hard.type, hard.linkname = tarfile.LNKTYPE, "/etc/shadow"
    (tmp_path / "h").mkdir()
    refused(make_sdist(tmp_path / "h", "ok-pkg", "1.0", members=[hard]), "hard link")
    two_roots = tarfile.TarInfo("elsewhere/file")
    (tmp_path / "r").mkdir()
    refused(make_sdist(tmp_path / "r", "ok-pkg", "1.0", members=[(two_roots, b"")]), "one top-level directory")
    big = tarfile.TarInfo("ok_pkg-1.0/zeros")
    big.size = 200_000
    (tmp_path / "z").mkdir()
    refused(make_sdist(tmp_path / "z", "ok-pkg", "1.0", members=[(big, b"\0" * 200_000)]), "expands to more")
    junk = tmp_path / "junk-1.0.tar.gz"
    junk.write_bytes(b"\x1f\x8b" + b"junk" * 10)
    refused(junk, "not a readable sdist")


def test_zip_sdist_and_metadata_check(tmp_path):
    path = tmp_path / "zip_pkg-1.0.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("zip_pkg-1.0/PKG-INFO", metadata_text("zip-pkg", "1.0", metadata_version="2.1"))
        zf.writestr("zip_pkg-1.0/setup.py", "")
    info = archive.inspect(str(path), filename=path.name, filetype="sdist", limits=archive.ArchiveLimits(),
                           size=path.stat().st_size)
    checked = archive.check_metadata(info, canonical_name="zip-pkg", version=Version("1.0.0"), form_name="zip-pkg")
    assert checked.requires_python == ">=3.8" and checked.wheel_metadata is None
    with pytest.raises(InvalidUpload, match="names 'zip-pkg' version '1.0'"):
        archive.check_metadata(info, canonical_name="other", version=Version("1.0"), form_name="other")
    bad = archive.ArchiveInfo(metadata_bytes=metadata_text("zip-pkg", "1.0").replace(
        "License-Expression: MIT", "License-Expression: Not A License").encode(), requires_python=None,
        wheel_metadata=None)
    with pytest.raises(InvalidUpload, match="Invalid distribution metadata"):
        archive.check_metadata(bad, canonical_name="zip-pkg", version=Version("1.0"), form_name="zip-pkg")


def test_license_expression_verdicts():
    base = {":action": ["file_upload"], "metadata_version": ["2.4"], "name": ["x"], "version": ["1.0"],
            "filetype": ["bdist_wheel"], "pyversion": ["py3"], "sha256_digest": ["a" * 64]}
    for _ in range(2):  # the second time from the cache: the same verdict
        assert parse_form({**base, "license_expression": ["MIT OR Apache-2.0"]}).name == "x"
        with pytest.raises(InvalidUpload, match="invalid value for License-Expression"):
            parse_form({**base, "license_expression": ["Not A License"]})
    with pytest.raises(InvalidUpload, match="invalid value for License-Expression"):  # too long to be cached
        parse_form({**base, "license_expression": [" OR ".join(["MIT"] * 60) + " OR Nope"]})


@given(st.binary(max_size=2000))
def test_archive_inspection_fails_only_with_a_message(data):
    for filename, filetype in (("x-1.0-py3-none-any.whl", "bdist_wheel"), ("x-1.0.tar.gz", "sdist"),
                               ("x-1.0.zip", "sdist")):
        try:
            archive.inspect(data, filename=filename, filetype=filetype, limits=archive.ArchiveLimits(),
                            size=len(data))
        except InvalidUpload:
            pass
