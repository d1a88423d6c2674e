"""`gatehouse migrate`: run each service's Alembic migrations to head.

Each service keeps its own history and its own database URL (AUTHSVC_DATABASE_URL,
UPLOADGW_DATABASE_URL, AUDITSVC_DATABASE_URL); a service whose URL is not set is skipped.
"""

from __future__ import annotations

import importlib
import pathlib

from gatehouse.cli.output import emit, fail
from gatehouse.cli.settings import DATA_DIR_HELP, load_environ
from gatehouse.infra.db import upgrade

SERVICES = ("authsvc", "uploadgw", "auditsvc")


def add_parser(sub) -> None:
    p = sub.add_parser("migrate", help="run database migrations for every service (or one)")
    p.add_argument("--service", choices=SERVICES, action="append", help="only this service (repeatable)")
    p.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run)


def migrations_dir(service: str) -> pathlib.Path:
    location = importlib.import_module(service).__file__
    if location is None:  # a namespace package: never one of the services
        raise RuntimeError(f"{service} is not a regular package")
    return pathlib.Path(location).parent / "migrations"


def run(args) -> int:
    environ, env_file = load_environ(args.data_dir)
    done = []
    for service in args.service or SERVICES:
        url = environ.get(f"{service.upper()}_DATABASE_URL")
        if not url:
            continue
        try:
            upgrade(url, migrations_dir(service))
        except Exception as exc:  # report and stop: a half-migrated fleet must not start
            return fail(args, f"{service}: migration failed: {exc}", 1)
        done.append(service)
    if not done:
        return fail(args, f"no *_DATABASE_URL set: nothing to migrate (looked in {env_file})", 2)
    emit(args, {"migrated": done}, "migrated " + ", ".join(done))
    return 0
