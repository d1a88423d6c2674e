"""Index reads near the limit: cached pages and file lookups (and when they are checked again),
validators and 304s, byte ranges, HEAD, sendfile to slow and to many readers, and the private
index's check on every request after caching."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import socket
import time

import pytest
from sqlalchemy import event
from yarl import URL

from gatehouse.auth.v1 import admin_pb2
from gatehouse.infra.outbox import ActorRef
from tests.uploadgw.conftest import make_uploader
from tests.uploadgw.dists import make_wheel
from tests.uploadgw.http_support import basic, post_upload
from uploadgw.server import start

JSON = "application/vnd.pypi.simple.v1+json"
PAGE = "/simple/cache-pkg/"
WINDOW = 60.0  # long enough that only a commit of the gateway itself can explain a fresh answer


@pytest.fixture
def gw_overrides():
    return {"index_recheck_seconds": WINDOW}


@pytest.fixture
async def published(gw, tmp_path):
    """cache-pkg 1.0 and 2.0 (wheels), by an owner whose token the tests keep."""
    up = await make_uploader(gw.auth)
    wheels = {}
    for version in ("1.0", "2.0"):
        path = make_wheel(tmp_path, "cache-pkg", version, payload=os.urandom(200_000))
        status, reason, _ = await post_upload(gw, path, up.token)
        assert status == 200, reason
        wheels[path.name] = path.read_bytes()
    return up, wheels


async def get(gw, path: str, method: str = "GET", **headers: str):
    async with gw.http.request(method, gw.url + path, headers=headers, allow_redirects=False) as resp:
        return resp.status, resp.headers, await resp.read()


async def file_urls(gw, **headers: str) -> dict[str, str]:
    status, _, body = await get(gw, PAGE, Accept=JSON, **headers)
    assert status == 200
    return {f["filename"]: str(URL(gw.url + PAGE).join(URL(f["url"])).path) for f in json.loads(body)["files"]}


async def test_pages_carry_validators_and_answer_304(gw, published):
    for accept in (JSON, "text/html"):
        status, headers, body = await get(gw, PAGE, Accept=accept)
        assert status == 200 and body
        assert headers["Cache-Control"] == "public, max-age=600" and headers["Vary"] == "Accept"
        assert headers["X-PyPI-Last-Serial"] == "2"
        etag = headers["ETag"]
        for validator in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            status, headers, body = await get(gw, PAGE, Accept=accept, **{"If-None-Match": validator})
            assert status == 304 and body == b"" and headers["ETag"] == etag, validator
        status, _, body = await get(gw, PAGE, Accept=accept, **{"If-None-Match": '"other"'})
        assert status == 200 and body
    _, json_headers, _ = await get(gw, PAGE, Accept=JSON)
    _, html_headers, _ = await get(gw, PAGE, Accept="text/html")
    assert json_headers["ETag"] != html_headers["ETag"]  # one validator per representation
    status, headers, body = await get(gw, PAGE, "HEAD", Accept=JSON)
    assert status == 200 and body == b"" and headers["ETag"] == json_headers["ETag"]


async def test_a_change_made_here_shows_at_once(gw, published, tmp_path):
    """Upload, yank and delete through this gateway, each read back at once (with a recheck window
    of a minute: only the commit itself can have made the cached page stale)."""
    up, _ = published
    _, headers, _ = await get(gw, PAGE, Accept=JSON)
    first = headers["ETag"]
    newer = make_wheel(tmp_path, "cache-pkg", "3.0")
    assert (await post_upload(gw, newer, up.token))[0] == 200
    status, headers, body = await get(gw, PAGE, Accept=JSON, **{"If-None-Match": first})
    assert status == 200 and newer.name in {f["filename"] for f in json.loads(body)["files"]}
    second = headers["ETag"]

    await gw.gateway.releases.set_yanked("cache-pkg", "3.0", yanked=True, reason="broken",
                                         actor=ActorRef.operator())
    status, headers, body = await get(gw, PAGE, Accept="text/html", **{"If-None-Match": second})
    assert status == 200 and 'data-yanked="broken"' in body.decode()

    urls = await file_urls(gw)
    name = "cache_pkg-1.0-py3-none-any.whl"
    assert (await get(gw, urls[name]))[0] == 200  # the lookup is cached now
    await gw.gateway.releases.delete_file("cache-pkg", name, actor=ActorRef.operator())
    assert (await get(gw, urls[name]))[0] == 404
    assert name not in await file_urls(gw)


async def test_a_change_made_by_another_replica_shows_within_the_window(gw, published):
    """A second gateway on the same database and file store yanks a release and deletes a file:
    the first serves the new page within its recheck window, and the deleted file is gone at once
    (its blob is)."""
    window = 0.5
    gw.gateway.index.recheck_seconds = window
    urls = await file_urls(gw)
    name = "cache_pkg-2.0-py3-none-any.whl"
    assert (await get(gw, urls[name]))[0] == 200
    _, headers, _ = await get(gw, PAGE, Accept=JSON)
    before = headers["ETag"]
    other = await start(dataclasses.replace(gw.settings, index_recheck_seconds=window), clock=gw.clock)
    try:
        await other.gateway.releases.set_yanked("cache-pkg", "1.0", yanked=True, reason="old",
                                                actor=ActorRef.operator())
        changed = time.monotonic()
        while True:
            _, headers, body = await get(gw, PAGE, Accept=JSON)
            if headers["ETag"] != before:
                break
            assert time.monotonic() - changed < window + 2.0, "the yank never showed"
            await asyncio.sleep(0.05)
        yanked = {f["filename"]: f["yanked"] for f in json.loads(body)["files"]}
        assert yanked["cache_pkg-1.0-py3-none-any.whl"] == "old"

        await other.gateway.releases.delete_file("cache-pkg", name, actor=ActorRef.operator())
        assert (await get(gw, urls[name]))[0] == 404
    finally:
        await other.stop()


async def test_a_burst_after_the_window_makes_one_trip_to_the_database(gw, published):
    """100 requests at once for a file whose cached lookup just expired: one query answers them all."""
    name = "cache_pkg-1.0-py3-none-any.whl"
    url = (await file_urls(gw))[name]
    assert (await get(gw, url))[0] == 200
    queries = []

    def count(conn, cursor, statement, *args):
        if "FROM files" in statement:
            queries.append(statement)

    engine = gw.gateway.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        gw.gateway.index.recheck_seconds = 0.2
        await asyncio.sleep(0.3)
        statuses = await asyncio.gather(*(get(gw, url) for _ in range(100)))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert [status for status, _, _ in statuses] == [200] * 100
    assert 1 <= len(queries) <= 2  # a second window may end during the burst on a slow machine


async def test_files_have_strong_etags_ranges_and_head(gw, published):
    _, wheels = published
    name = "cache_pkg-1.0-py3-none-any.whl"
    data = wheels[name]
    url = (await file_urls(gw))[name]
    etag = f'"{hashlib.sha256(data).hexdigest()}"'
    size = len(data)

    status, headers, body = await get(gw, url)
    assert status == 200 and body == data and headers["ETag"] == etag and headers["Accept-Ranges"] == "bytes"
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    status, headers, body = await get(gw, url, **{"If-None-Match": etag})
    assert status == 304 and body == b"" and headers["ETag"] == etag
    status, headers, body = await get(gw, url, "HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) == size

    for spec, first, last in (("bytes=0-9", 0, 9), ("bytes=100-", 100, size - 1), ("bytes=-20", size - 20, size - 1),
                              (f"bytes=10-{size + 50}", 10, size - 1), ("BYTES=5-5", 5, 5)):
        status, headers, body = await get(gw, url, Range=spec)
        assert status == 206, spec
        assert headers["Content-Range"] == f"bytes {first}-{last}/{size}" and body == data[first:last + 1], spec
    status, headers, body = await get(gw, url, Range="bytes=0-9", **{"If-Range": etag})
    assert status == 206 and body == data[:10]

    for spec in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"):
        status, headers, _ = await get(gw, url, Range=spec)
        assert status == 416 and headers["Content-Range"] == f"bytes */{size}", spec
    # Several ranges, another unit, malformed or inverted ranges, a stale If-Range: the whole file.
    for extra in ({"Range": "bytes=0-1,5-9"}, {"Range": "items=0-1"}, {"Range": "bytes=x-y"},
                  {"Range": "bytes=" + "9" * 5000 + "-"},
                  {"Range": "bytes=9-2"}, {"Range": "bytes=0-9", "If-Range": '"stale"'}):
        status, headers, body = await get(gw, url, **extra)
        assert status == 200 and body == data, extra

    status, headers, metadata = await get(gw, url + ".metadata")
    assert status == 200 and b"Name: cache-pkg" in metadata
    assert headers["ETag"] == f'"{hashlib.sha256(metadata).hexdigest()}"'
    status, _, body = await get(gw, url + ".metadata", **{"If-None-Match": headers["ETag"]})
    assert status == 304 and body == b""


async def test_a_slow_reader_and_a_hundred_at_once_get_every_byte(gw, tmp_path):
    """A file larger than the socket buffers goes to a reader that waits before reading (sendfile
    stops when the socket is full; the rest goes through the transport), and to 100 readers at
    once, each with a range of its own or the whole file."""
    up = await make_uploader(gw.auth)
    path = make_wheel(tmp_path, "big-pkg", "1.0", payload=os.urandom(12 * 1024 * 1024))
    assert (await post_upload(gw, path, up.token))[0] == 200
    data = path.read_bytes()
    _, _, body = await get(gw, "/simple/big-pkg/", Accept=JSON)
    url = str(URL(gw.url + "/simple/big-pkg/").join(URL(json.loads(body)["files"][0]["url"])).path)

    def slow_read() -> bytes:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", gw.running.port))
            sock.sendall(f"GET {url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            time.sleep(0.5)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        head, _, rest = b"".join(chunks).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and f"Content-Length: {len(data)}".encode() in head
        return rest

    assert await asyncio.to_thread(slow_read) == data

    def hang_up() -> None:  # a reader that leaves half way
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", gw.running.port))
            sock.sendall(f"GET {url} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            sock.recv(1024)
            time.sleep(0.3)

    await asyncio.to_thread(hang_up)
    await asyncio.sleep(0.3)
    assert gw.requests_to("file", 500) == 0

    async def one(i: int) -> None:
        if i % 2:
            status, _, body = await get(gw, url)
            assert status == 200 and body == data
        else:
            first = i * 100_003
            status, headers, body = await get(gw, url, Range=f"bytes={first}-{first + 65535}")
            assert status == 206 and body == data[first:first + 65536]

    await asyncio.gather(*(one(i) for i in range(100)))


class TestPrivateIndex:
    @pytest.fixture
    def gw_overrides(self):
        return {"index_private": True, "index_recheck_seconds": WINDOW}

    async def test_every_read_is_checked_after_caching(self, gw, published):
        up, _ = published
        token = {"Authorization": basic(up.token)}
        urls = await file_urls(gw, **token)
        url = urls["cache_pkg-1.0-py3-none-any.whl"]
        status, headers, _ = await get(gw, PAGE, Accept=JSON, **token)
        assert status == 200 and headers["Cache-Control"] == "private, max-age=600"
        assert headers["Vary"] == "Accept, Authorization"
        etag = headers["ETag"]
        assert (await get(gw, url, **token))[0] == 200  # page and file lookup are cached now
        for headers in ({}, {"Authorization": basic(up.token + "x")}):
            assert (await get(gw, PAGE, Accept=JSON, **headers))[0] == 401
            assert (await get(gw, PAGE, Accept=JSON, **headers, **{"If-None-Match": etag}))[0] == 401
            assert (await get(gw, url, **headers))[0] == 401
            assert (await get(gw, url, "HEAD", **headers))[0] == 401
        await gw.auth.admin.RevokeToken(admin_pb2.AdminRevokeTokenRequest(token_id=up.token_id))
        assert (await get(gw, PAGE, Accept=JSON, **token))[0] == 401
        assert (await get(gw, url, **token, Range="bytes=0-9"))[0] == 401
