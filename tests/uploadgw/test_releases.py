"""Managing releases: delete a file or a release, yank, remove a deleted project's files (idempotent and
resumable after a crash half way), sweeping leftovers."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from sqlalchemy import func, select

from gatehouse.auth.v1 import admin_pb2
from gatehouse.infra.outbox import ActorRef
from tests.uploadgw.conftest import BACKENDS, EVERYTHING, make_uploader, mint, twine
from tests.uploadgw.dists import make_sdist, make_wheel
from tests.uploadgw.http_support import post_upload
from uploadgw import admin
from uploadgw.app import sweep_once
from uploadgw.errors import NotFound
from uploadgw.models import File, Filename, Project, Release


async def publish(gw, tmp_path, up, name: str, *versions: str):
    paths = []
    for version in versions:
        for path in (make_wheel(tmp_path, name, version), make_sdist(tmp_path, name, version)):
            status, reason, _ = await post_upload(gw, path, up.token)
            assert status == 200, reason
            paths.append(path)
    return paths


async def count(gw, model, *where) -> int:
    async with gw.gateway.db() as session:
        return (await session.execute(select(func.count()).select_from(model).where(*where))).scalar()


async def page(gw, name: str):
    async with gw.http.get(f"{gw.url}/simple/{name}/", headers={
            "Accept": "application/vnd.pypi.simple.v1+json"}) as resp:
        return resp.status, (await resp.json(content_type=None)) if resp.status == 200 else None


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_delete_file_then_its_name_is_never_reused(gw, tmp_path):
    up = await make_uploader(gw.auth)
    wheel, sdist = await publish(gw, tmp_path, up, "del-file", "1.0")
    blobs = await gw.stored_blobs()
    report = await admin.delete_file(gw.settings, "Del_File", wheel.name, operator="ops-alice")
    assert report.files == 1
    _, listing = await page(gw, "del-file")
    assert [f["filename"] for f in listing["files"]] == [sdist.name]
    assert len(await gw.stored_blobs()) == len(blobs) - 1
    again = await twine(gw.upload_url, wheel, password=up.token)
    assert again.rc != 0 and "This filename has already been used" in again.flat, again.output
    [event] = await gw.events("project:file:remove")
    assert event.details["filename"] == wheel.name and event.actor.username == "ops-alice"
    with pytest.raises(NotFound):
        await admin.delete_file(gw.settings, "del-file", wheel.name)


async def test_delete_release(gw, tmp_path):
    """Seed workflow: delete a release; the project log gets the event."""
    up = await make_uploader(gw.auth)
    await publish(gw, tmp_path, up, "del-rel", "1.0", "2.0")
    report = await gw.gateway.releases.delete_release("del-rel", "1.0.0", actor=ActorRef.user(up.user_id,
                                                                                               up.username))
    assert (report.files, report.releases) == (2, 1)
    _, listing = await page(gw, "del-rel")
    assert listing["versions"] == ["2.0"] and all("-2.0" in f["filename"] for f in listing["files"])
    assert await count(gw, Release) == 1 and await count(gw, File) == 2 and await count(gw, Filename) == 4
    [event] = await gw.events("project:release:remove")
    assert event.details["version"] == "1.0" and event.project_name == "del-rel"
    async with gw.gateway.db() as session:
        total = (await session.execute(select(Project.total_size))).scalar_one()
        sizes = (await session.execute(select(func.sum(File.size)))).scalar_one()
    assert total == sizes
    # The version may be uploaded again, under new filenames (a build tag).
    rebuilt = make_wheel(tmp_path, "del-rel", "1.0", filename="del_rel-1.0-1-py3-none-any.whl")
    assert (await post_upload(gw, rebuilt, up.token))[0] == 200


async def test_deleted_project_tokens_refused_and_files_removed(gw, tmp_path):
    """Seed workflow: delete a project; a token scoped to it stops working; its files go too."""
    up = await make_uploader(gw.auth, own=["gone-proj"])
    scoped = await mint(gw.auth, up.username, projects=["gone-proj"])
    paths = await publish(gw, tmp_path, scoped, "gone-proj", "1.0", "1.1")
    keep = await publish(gw, tmp_path, up, "kept-proj", "1.0")
    reply = await gw.auth.admin.DeleteProject(admin_pb2.AdminDeleteProjectRequest(project_name="gone-proj"))
    result = await twine(gw.upload_url, make_wheel(tmp_path, "gone-proj", "2.0"), password=scoped.token)
    assert result.rc != 0 and "403" in result.flat, result.output

    report = await admin.delete_project_files(gw.settings, project_id=reply.project_id)
    assert (report.files, report.releases) == (4, 2)
    assert (await page(gw, "gone-proj"))[0] == 404
    assert await count(gw, File) == 2 and await count(gw, Project) == 1 and await count(gw, Release) == 1
    assert len(await gw.stored_blobs()) == 2  # kept-proj: wheel and sdist
    assert await count(gw, Filename) == len(paths) + len(keep)  # names stay used
    again = await admin.delete_project_files(gw.settings, "gone-proj")
    assert (again.files, again.releases) == (0, 0)
    assert len(await gw.events("project:release:remove")) == 2


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_project_removal_resumes_after_a_crash(gw, tmp_path):
    up = await make_uploader(gw.auth)
    await publish(gw, tmp_path, up, "crash-proj", "1.0", "2.0")
    # A replica marks the project deleted, removes one blob, and dies.
    ids, report = await gw.gateway.releases.mark_project_deleted(project_name="crash-proj")
    assert report.files == 4
    assert (await page(gw, "crash-proj"))[0] == 404  # hidden at once
    await gw.gateway.store.delete((await gw.stored_blobs())[0])
    # Another process (the operator CLI) runs the removal again and finishes it.
    report = await admin.delete_project_files(gw.settings, "crash-proj")
    assert report.files == 0  # nothing newly marked; the marked rows were finished
    assert await gw.stored_blobs() == [] and await count(gw, File) == 0 and await count(gw, Project) == 0
    assert len(await gw.events("project:release:remove")) == 2  # events were written once


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_the_sweeper_finishes_removals_and_temporaries(gw, tmp_path):
    up = await make_uploader(gw.auth)
    await publish(gw, tmp_path, up, "sweep-proj", "1.0")
    await gw.gateway.releases.mark_project_deleted(project_name="sweep-proj")
    stale = os.path.join(gw.settings.storage_dir, "tmp", "upload-dead.part")
    with open(stale, "wb") as fp:
        fp.write(b"half an upload")
    old = time.time() - gw.settings.temp_max_age_seconds - 60
    os.utime(stale, (old, old))
    fresh = os.path.join(gw.settings.storage_dir, "tmp", "upload-live.part")
    open(fresh, "wb").close()
    await sweep_once(gw.gateway)
    assert await gw.stored_blobs() == [] and await count(gw, File) == 0
    assert await gw.temp_files() == ["upload-live.part"]


async def test_the_sweeper_removes_blobs_whose_upload_died_before_recording_them(gw, tmp_path):
    up = await make_uploader(gw.auth)
    await publish(gw, tmp_path, up, "pending-proj", "1.0")
    recorded = await gw.stored_blobs()
    store = gw.gateway.store
    old = time.time() - gw.settings.temp_max_age_seconds - 60
    # A replica stored a blob and died before its row (pending, old); another died after the commit
    # but before settling (its row exists); a third upload is in flight (pending, young).
    dead = await store.store("ab" * 32, b"stored, never recorded")
    settled_late = store.pending_dir / recorded[0].split("/")[-1]
    settled_late.touch()
    in_flight = await store.store("cd" * 32, b"being recorded")
    for marker in (store.pending_dir / dead.split("/")[-1], settled_late):
        os.utime(marker, (old, old))
    await sweep_once(gw.gateway)
    assert await gw.stored_blobs() == sorted([*recorded, in_flight])
    assert os.listdir(store.pending_dir) == [in_flight.split("/")[-1]]
    assert (await page(gw, "pending-proj"))[0] == 200


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_a_blob_is_removed_after_a_failed_record_only_if_no_row_names_it(gw, tmp_path):
    """A failed (or abandoned) commit may still have committed (PostgreSQL, a lost connection): the
    blob is removed only when the database says no row names it."""
    up = await make_uploader(gw.auth)
    await publish(gw, tmp_path, up, "unsure-proj", "1.0")
    recorded = (await gw.stored_blobs())[0]
    failed = asyncio.get_running_loop().create_future()
    failed.set_exception(ConnectionError("connection lost during COMMIT"))
    uploads = gw.gateway.uploads
    await gw.mark_pending(recorded)  # as if this upload had stored it
    await uploads._after_record(failed, recorded)
    assert recorded in await gw.stored_blobs() and await gw.temp_files() == []  # kept, and no longer pending
    never = await gw.gateway.store.store("ef" * 32, b"never recorded")
    await uploads._after_record(failed, never)
    assert never not in await gw.stored_blobs() and await gw.temp_files() == []


async def test_orphan_blobs_are_collected_by_age(gw, tmp_path):
    up = await make_uploader(gw.auth)
    await publish(gw, tmp_path, up, "orphan-proj", "1.0")
    live = await gw.stored_blobs()
    orphan = os.path.join(gw.settings.storage_dir, "blobs", "ab", "cd", "ab" * 32 + "-" + "0" * 16)
    os.makedirs(os.path.dirname(orphan))
    with open(orphan, "wb") as fp:
        fp.write(b"stored, never recorded")
    os.utime(orphan, (time.time() - 2 * 86400,) * 2)
    result = await admin.sweep(gw.settings)
    assert result["orphan_blobs_removed"] == 1 and await gw.stored_blobs() == live


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_the_full_scan_removes_only_blobs_no_row_names(gw, tmp_path):
    """The operator's sweep lists the whole store (a bucket too) and keeps every blob a row names."""
    up = await make_uploader(gw.auth)
    await publish(gw, tmp_path, up, "scan-proj", "1.0")
    live = await gw.stored_blobs()
    orphan = await gw.gateway.store.store("ab" * 32, b"stored, never recorded")
    await gw.gateway.store.settle(orphan)  # not even pending: only the full scan finds it
    assert await gw.gateway.releases.collect_orphan_blobs(-EVERYTHING) == 1
    assert await gw.stored_blobs() == live and (await page(gw, "scan-proj"))[0] == 200


async def test_a_recreated_project_replaces_the_deleted_ones_files(gw, tmp_path):
    """Deleted in authsvc but not yet cleaned here, then created again by a new upload: the old files go."""
    first = await make_uploader(gw.auth)
    await publish(gw, tmp_path, first, "phoenix", "1.0")
    await gw.auth.admin.DeleteProject(admin_pb2.AdminDeleteProjectRequest(project_name="phoenix"))
    second = await make_uploader(gw.auth)
    newer = make_wheel(tmp_path, "phoenix", "2.0")
    status, reason, _ = await post_upload(gw, newer, second.token)
    assert status == 200, reason
    _, listing = await page(gw, "phoenix")
    assert [f["filename"] for f in listing["files"]] == [newer.name]
    assert await count(gw, Project) == 1
    assert await count(gw, Project, Project.deleted_at.is_(None)) == 1


async def test_limits_must_be_positive(gw):
    from uploadgw.errors import InvalidUpload

    with pytest.raises(InvalidUpload):
        await admin.set_project_limits(gw.settings, "x", file_size_limit=0)
