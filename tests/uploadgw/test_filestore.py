"""The file stores (uploadgw/storage): one contract, run on the local store (with and without hard
links) and on an S3 bucket of moto's server; then what is particular to each."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import re

import pytest
from yarl import URL

from tests.uploadgw.conftest import EVERYTHING
from uploadgw.storage import filestore
from uploadgw.storage.filestore import LocalFile, LocalFileStore, Redirect, Stream
from uploadgw.storage.s3store import PART_SIZE, S3FileStore

LOCAL = ["hard links", "no hard links"]


def local(kind: str, tmp_path, monkeypatch) -> LocalFileStore:
    """A store on this filesystem, or one that behaves as on a filesystem without hard links."""
    if kind == "no hard links":
        monkeypatch.setattr(filestore, "_hard_links_work", lambda directory: False)
    made = LocalFileStore(tmp_path, fsync=True)
    assert made.hard_links is (kind == "hard links")
    return made


@pytest.fixture(params=[*LOCAL, "s3"])
async def store(request, tmp_path, monkeypatch):
    """Each local store, and a bucket on moto's S3 server."""
    if request.param == "s3":
        settings = await request.getfixturevalue("s3_server").new_bucket()
        async with S3FileStore.open(settings, tmp_path / "tmp") as made:
            yield made
    else:
        yield local(request.param, tmp_path, monkeypatch)


@pytest.fixture
async def s3_store(s3_server, tmp_path):
    async with S3FileStore.open(await s3_server.new_bucket(), tmp_path / "tmp") as made:
        yield made


async def read(store, key: str) -> bytes:
    """The blob's bytes, as a download gets them."""
    download = await store.download(key, "x.whl")
    if isinstance(download, LocalFile):
        with open(download.path, "rb") as fp:
            return fp.read()
    assert isinstance(download, Stream)
    async with contextlib.aclosing(download.chunks) as chunks:
        data = b"".join([chunk async for chunk in chunks])
    assert len(data) == download.size
    return data


def scratch_file(store, data: bytes) -> str:
    temp, fp = store.scratch.new_temp()
    with fp:
        fp.write(data)
    return temp


async def test_keys_are_the_content_and_a_random_tag_each_registered_until_settled(store, tmp_path):
    sha = "AB" * 32
    key = await store.store(sha, b"data")
    again = await store.store(sha, b"data")  # identical bytes, another upload: a blob of its own
    assert re.fullmatch(r"ab/(ab){32}-[0-9a-f]{16}", key) and again != key
    assert await read(store, key) == b"data" and await store.exists(again)
    assert sorted(await store.pending(-EVERYTHING)) == sorted([key, again]) and await store.pending(3600) == []
    await store.settle(key)  # recorded
    await store.discard(again)  # refused: its blob goes, the other upload's stays
    assert await store.pending(-EVERYTHING) == [] and await store.exists(key) and not await store.exists(again)
    assert await read(store, key) == b"data"
    moved = await store.store("cd" * 32, scratch_file(store, b"streamed"))  # the store takes the file
    assert await read(store, moved) == b"streamed" and store.scratch.names() == []
    assert await store.pending(-EVERYTHING) == [moved]
    assert sorted(await store.keys(-EVERYTHING)) == sorted([key, moved]) and await store.keys(3600) == []
    await store.delete(key)
    await store.delete(key)  # a missing blob is no error
    assert not await store.exists(key)
    with pytest.raises(FileNotFoundError):
        await read(store, key)
    with pytest.raises(ValueError):
        await store.download("../../etc/passwd", "x.whl")
    with pytest.raises(ValueError):
        await store.store("not a digest", b"x")


async def test_a_large_file_is_stored_whole_and_stale_scratch_files_are_swept(store):
    data = os.urandom(2 * PART_SIZE + 12345)  # three parts in a bucket
    key = await store.store("ef" * 32, scratch_file(store, data))
    assert await read(store, key) == data
    temp = scratch_file(store, b"half an upload")
    assert await store.sweep_incomplete(3600) == 0 and os.path.exists(temp)
    assert await store.sweep_incomplete(-1) == 1 and not os.path.exists(temp)


# -- the local store ---------------------------------------------------------------------------------
async def test_the_registration_is_the_blobs_second_name_where_the_filesystem_has_hard_links(tmp_path):
    store = LocalFileStore(tmp_path)
    assert store.hard_links  # ext4, xfs, btrfs, tmpfs, NFS all have them
    key = await store.store("ab" * 32, b"data")
    blob, marker = store.blobs / key, store.pending_dir / key.split("/")[1]
    assert os.path.samestat(blob.stat(), marker.stat()) and blob.stat().st_nlink == 2
    await store.settle(key)
    assert blob.stat().st_nlink == 1 and not marker.exists()
    assert sorted(p.name for p in store.blobs.iterdir()) == [f"{i:02x}" for i in range(256)]
    assert await store.download(key, "x.whl") == LocalFile(str(blob))  # sent with sendfile


@pytest.fixture(params=LOCAL)
def local_store(request, tmp_path, monkeypatch):
    return local(request.param, tmp_path, monkeypatch)


async def test_a_name_already_taken_is_never_touched(local_store, monkeypatch):
    """Keys carry 64 random bits; should one come twice, the second upload draws again and leaves
    the first upload's blob and registration as they were."""
    store = local_store
    taken = await store.store("ab" * 32, b"first upload")
    fresh = filestore.new_key
    drawn = iter([taken, fresh("ab" * 32)])
    monkeypatch.setattr(filestore, "new_key", lambda sha: next(drawn))
    key = await store.store("ab" * 32, b"second upload")
    assert key != taken and await read(store, taken) == b"first upload" and await read(store, key) == b"second upload"
    assert sorted(await store.pending(-EVERYTHING)) == sorted([taken, key])
    await store.settle(taken)  # recorded: only its blob's name remains; the next upload that draws it
    drawn = iter([taken, fresh("ab" * 32)])
    third = await store.store("ab" * 32, scratch_file(store, b"streamed"))
    assert third != taken and await read(store, taken) == b"first upload" and await read(store, third) == b"streamed"
    assert sorted(await store.pending(-EVERYTHING)) == sorted([key, third])


async def test_keys_of_the_earlier_layout_stay_valid(local_store):
    """Earlier versions stored blobs under `ab/cd/<name>`: they are read, deleted, swept and
    listed as before."""
    store = local_store
    name = "ab" * 32 + "-" + "0" * 16
    earlier = f"ab/ab/{name}"
    (store.blobs / "ab" / "ab").mkdir()
    (store.blobs / earlier).write_bytes(b"old blob")
    (store.pending_dir / name).touch()  # it was pending when the gateway was upgraded
    current = await store.store("cd" * 32, b"new blob")
    assert await read(store, earlier) == b"old blob" and await store.exists(earlier)
    assert sorted(await store.pending(-EVERYTHING)) == sorted([earlier, current])
    assert sorted(await store.keys(-EVERYTHING)) == sorted([earlier, current])
    await store.discard(earlier)
    assert not await store.exists(earlier) and await store.pending(-EVERYTHING) == [current]


def test_a_stored_blob_is_durable_and_its_directory_synced(local_store, tmp_path, monkeypatch):
    store = local_store
    synced: list = []
    real_fsync = os.fsync

    def path_sync(path):
        synced.append(path)
        fd = os.open(path, os.O_RDONLY)
        real_fsync(fd)
        os.close(fd)

    monkeypatch.setattr(filestore, "_fsync_path", path_sync)
    monkeypatch.setattr(filestore.os, "fsync", lambda fd: (synced.append("file"), real_fsync(fd)))
    key = store._store("cd" * 32, b"data")
    # The file's bytes first (one journal commit for every change), then the directory that gained
    # the blob's name (the registration's is not synced). No directory is created.
    assert synced == ["file", tmp_path / "blobs" / "cd"]
    temp = scratch_file(store, b"streamed")
    synced.clear()
    moved = store._store("cd" * 32, temp)
    assert synced == [store.blobs / moved, tmp_path / "blobs" / "cd"]
    monkeypatch.setattr(filestore.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        store._store("ef" * 32, b"lost")
    assert not any(k.startswith("ef/") for k in store._iter_pending(-EVERYTHING))
    assert list((tmp_path / "blobs" / "ef").iterdir()) == []  # a failed store leaves no blob
    temp = scratch_file(store, b"streamed, lost")
    monkeypatch.setattr(filestore, "_fsync_path", lambda path: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        store._store("ef" * 32, temp)
    assert list((tmp_path / "blobs" / "ef").iterdir()) == []
    assert sorted(store._iter_pending(-EVERYTHING)) == sorted([key, moved])
    assert store._path(key).is_file()


# -- the S3 store ------------------------------------------------------------------------------------
async def uploads_in_progress(s3_server, store) -> list[str]:
    async with s3_server.client() as s3:
        listed = await s3.list_multipart_uploads(Bucket=store.bucket)
    return [upload["Key"] for upload in listed.get("Uploads", [])]


async def test_a_failed_multipart_upload_is_aborted_and_leaves_nothing(s3_server, s3_store, monkeypatch):
    """The server drops the connection on the second part: the multipart upload is aborted at once,
    the registration removed, no blob made."""
    real = s3_store._client.upload_part

    async def second_part_fails(**kwargs):
        if kwargs["PartNumber"] == 2:
            raise ConnectionResetError("connection reset by peer")
        return await real(**kwargs)

    monkeypatch.setattr(s3_store._client, "upload_part", second_part_fails)
    with pytest.raises(ConnectionResetError):
        await s3_store.store("ab" * 32, scratch_file(s3_store, os.urandom(2 * PART_SIZE)))
    assert await uploads_in_progress(s3_server, s3_store) == []
    assert await s3_store.keys(-EVERYTHING) == [] and await s3_store.pending(-EVERYTHING) == []


async def test_an_interrupted_multipart_upload_is_aborted(s3_server, s3_store):
    """The request is cancelled (the client went away) while the parts are sent."""
    task = asyncio.ensure_future(s3_store.store("ab" * 32, scratch_file(s3_store, os.urandom(4 * PART_SIZE))))
    for _ in range(200):
        if await uploads_in_progress(s3_server, s3_store):
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the multipart upload never started")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await uploads_in_progress(s3_server, s3_store) == []
    assert await s3_store.keys(-EVERYTHING) == [] and await s3_store.pending(-EVERYTHING) == []


async def test_the_sweeper_aborts_multipart_uploads_a_crash_left(s3_server, s3_store):
    async with s3_server.client() as s3:
        name = "blobs/ab/" + "ab" * 32 + "-" + "0" * 16
        started = await s3.create_multipart_upload(Bucket=s3_store.bucket, Key=name)
        await s3.upload_part(Bucket=s3_store.bucket, Key=name, UploadId=started["UploadId"], PartNumber=1,
                             Body=b"x" * PART_SIZE)
    # (moto reports every multipart upload as initiated in 2010: the age bound is not seen here.)
    assert await uploads_in_progress(s3_server, s3_store) == [name]
    assert await s3_store.sweep_incomplete(3600) == 1 and await uploads_in_progress(s3_server, s3_store) == []


async def test_objects_outside_the_prefix_are_left_alone(s3_server, tmp_path):
    settings = await s3_server.new_bucket(prefix="index-a/")
    async with s3_server.client() as s3:
        await s3.put_object(Bucket=settings.bucket, Key="blobs/ab/" + "ab" * 32 + "-" + "1" * 16, Body=b"other")
        async with S3FileStore.open(settings, tmp_path) as store:
            key = await store.store("cd" * 32, b"mine")
            assert await store.keys(-EVERYTHING) == [key] and await store.pending(-EVERYTHING) == [key]
        listed = await s3.list_objects_v2(Bucket=settings.bucket, Prefix="index-a/")
    assert sorted(item["Key"] for item in listed["Contents"]) == [
        f"index-a/blobs/{key}", f"index-a/pending/{key.split('/')[1]}"]


async def test_files_copied_from_a_local_store_keep_their_keys(s3_server, s3_store, tmp_path):
    """An operator moving to a bucket copies `blobs/` as it is, the earlier `ab/cd/<name>` layout too."""
    local_store = LocalFileStore(tmp_path / "local")
    current = await local_store.store("ab" * 32, b"current layout")
    earlier = "cd/cd/" + "cd" * 32 + "-" + "0" * 16
    (local_store.blobs / "cd" / "cd").mkdir()
    (local_store.blobs / earlier).write_bytes(b"earlier layout")
    async with s3_server.client() as s3:
        for key in (current, earlier):
            await s3.put_object(Bucket=s3_store.bucket, Key=f"blobs/{key}", Body=(local_store.blobs / key).read_bytes())
    assert await read(s3_store, current) == b"current layout" and await read(s3_store, earlier) == b"earlier layout"
    assert sorted(await s3_store.keys(-EVERYTHING)) == sorted([current, earlier])
    with pytest.raises(ValueError):
        await s3_store.download("cd/../" + earlier.rsplit("/", 1)[1], "x.whl")


async def test_a_redirect_is_a_presigned_url_that_expires(s3_server, tmp_path):
    import aiohttp

    settings = await s3_server.new_bucket(downloads="redirect", presign_seconds=30)
    async with S3FileStore.open(settings, tmp_path) as store:
        key = await store.store("ab" * 32, b"wheel bytes")
        download = await store.download(key, "pkg-1.0-py3-none-any.whl")
    assert isinstance(download, Redirect)
    async with aiohttp.ClientSession() as http:
        async with http.get(download.url) as resp:
            assert resp.status == 200 and await resp.read() == b"wheel bytes"
            assert resp.headers["Content-Disposition"] == 'attachment; filename="pkg-1.0-py3-none-any.whl"'
    # Signed with its expiry (moto's server does not check signatures: S3 refuses the URL after 30 s).
    query = URL(download.url).query
    signed_at = dt.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    assert query["X-Amz-Expires"] == "30" and abs(dt.datetime.now(dt.timezone.utc) - signed_at).total_seconds() < 60
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256" and len(query["X-Amz-Signature"]) == 64
