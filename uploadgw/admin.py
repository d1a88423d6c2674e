"""Operator actions on the gateway's data, for the operator CLI (and `python -m uploadgw.admin`).

Each function opens the gateway's database and file store from its settings, acts through the
same ReleaseService the gateway uses (so events land in the gateway's outbox), and closes them.
Permission checks are the CLI's business: it holds the operator credential.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys

from gatehouse.infra.clock import Clock, SystemClock
from gatehouse.infra.db import make_engine, make_session_factory
from gatehouse.infra.outbox import ActorRef, EventEmitter, event_signer
from uploadgw.models import outbox
from uploadgw.releases.service import ReleaseService, RemovalReport
from uploadgw.settings import Settings
from uploadgw.storage import open_store


@contextlib.asynccontextmanager
async def _releases(settings: Settings, clock: Clock | None = None):
    clock = clock or SystemClock()
    engine = make_engine(settings.database_url)
    try:
        async with open_store(settings) as store:
            yield ReleaseService(db=make_session_factory(engine), store=store,
                                 events=EventEmitter(outbox, source="uploadgw", clock=clock,
                                                     signer=event_signer("uploadgw", settings.event_keys)),
                                 clock=clock)
    finally:
        await engine.dispose()


async def set_project_limits(settings: Settings, project_name: str, *, file_size_limit: int | None = None,
                             total_size_limit: int | None = None) -> None:
    """Override the per-file and total size limits of one project (None for both: the defaults)."""
    async with _releases(settings) as releases:
        await releases.set_limits(project_name, file_size_limit=file_size_limit, total_size_limit=total_size_limit)


async def get_project_limits(settings: Settings, project_name: str) -> tuple[int, int]:
    """The effective (file, total) size limits of one project."""
    async with _releases(settings) as releases:
        file_limit, total_limit = await releases.get_limits(project_name)
    return file_limit or settings.max_file_size, total_limit or settings.max_project_size


async def delete_file(settings: Settings, project_name: str, filename: str, *,
                      operator: str = "operator") -> RemovalReport:
    async with _releases(settings) as releases:
        return await releases.delete_file(project_name, filename, actor=ActorRef.operator(operator))


async def delete_release(settings: Settings, project_name: str, version: str, *,
                         operator: str = "operator") -> RemovalReport:
    async with _releases(settings) as releases:
        return await releases.delete_release(project_name, version, actor=ActorRef.operator(operator))


async def yank(settings: Settings, project_name: str, version: str, reason: str = "", *,
               operator: str = "operator") -> None:
    async with _releases(settings) as releases:
        await releases.set_yanked(project_name, version, yanked=True, reason=reason,
                                  actor=ActorRef.operator(operator))


async def unyank(settings: Settings, project_name: str, version: str, *, operator: str = "operator") -> None:
    async with _releases(settings) as releases:
        await releases.set_yanked(project_name, version, yanked=False, actor=ActorRef.operator(operator))


async def delete_project_files(settings: Settings, project_name: str | None = None, *,
                               project_id: str | None = None) -> RemovalReport:
    """After authsvc deleted a project: remove its releases, files and rows here. Idempotent and
    resumable; pass authsvc's project id when known (a re-created project of that name has another)."""
    async with _releases(settings) as releases:
        return await releases.purge_project(project_id, project_name=project_name)


async def sweep(settings: Settings, *, orphan_min_age_seconds: float = 24 * 3600) -> dict:
    """Finish interrupted removals, drop stale temporaries and unrecorded blobs, then scan the whole
    store for blobs that no row refers to (older than a day, and never younger than the temporaries'
    age: an upload in flight records its blob well within that)."""
    async with _releases(settings) as releases:
        finished = await releases.finish_pending()
        temp = await releases.store.sweep_incomplete(settings.temp_max_age_seconds)
        unrecorded = await releases.collect_unrecorded(settings.temp_max_age_seconds)
        orphans = await releases.collect_orphan_blobs(max(orphan_min_age_seconds, settings.temp_max_age_seconds))
    return {"files_removed": finished, "temp_removed": temp, "unrecorded_removed": unrecorded,
            "orphan_blobs_removed": orphans}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m uploadgw.admin", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("set-limits")
    p.add_argument("project")
    p.add_argument("--file-size", type=int)
    p.add_argument("--total-size", type=int)
    p = sub.add_parser("delete-file")
    p.add_argument("project")
    p.add_argument("filename")
    p = sub.add_parser("delete-release")
    p.add_argument("project")
    p.add_argument("version")
    p = sub.add_parser("yank")
    p.add_argument("project")
    p.add_argument("version")
    p.add_argument("--reason", default="")
    p = sub.add_parser("unyank")
    p.add_argument("project")
    p.add_argument("version")
    p = sub.add_parser("delete-project-files")
    p.add_argument("project")
    p.add_argument("--project-id")
    sub.add_parser("sweep")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    command = {
        "set-limits": lambda: set_project_limits(settings, args.project, file_size_limit=args.file_size,
                                                 total_size_limit=args.total_size),
        "delete-file": lambda: delete_file(settings, args.project, args.filename),
        "delete-release": lambda: delete_release(settings, args.project, args.version),
        "yank": lambda: yank(settings, args.project, args.version, args.reason),
        "unyank": lambda: unyank(settings, args.project, args.version),
        "delete-project-files": lambda: delete_project_files(settings, args.project, project_id=args.project_id),
        "sweep": lambda: sweep(settings),
    }[args.command]
    result = asyncio.run(command())
    if result is not None:
        print(json.dumps(result.__dict__ if hasattr(result, "__dict__") else result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
