"""Each service's migrations, run on an empty database, give exactly its models' schema."""

from __future__ import annotations

import importlib
import importlib.util
import pathlib
import subprocess
import sys

import pytest

from gatehouse.cli.migrate import migrations_dir
from gatehouse.infra.db import schema_drift
from tests.conftest import TEST_DB

ROOT = pathlib.Path(__file__).resolve().parent.parent

SERVICES = [s for s in ("authsvc", "uploadgw", "auditsvc")
            if importlib.util.find_spec(s) and importlib.util.find_spec(f"{s}.models")]


@pytest.mark.parametrize("service", SERVICES)
def test_upgrade_head_matches_models(service, make_database_url):
    metadata = importlib.import_module(f"{service}.models").metadata
    drift = schema_drift(make_database_url(service), migrations_dir(service), metadata)
    assert drift == [], f"{service}: migrations and models differ: {drift}"


@pytest.mark.skipif(not TEST_DB.startswith("postgres"), reason="PostgreSQL's advisory lock")
@pytest.mark.parametrize("service", SERVICES)
def test_pods_migrating_at_once_take_turns(service, make_database_url):
    """Four processes start on an empty database together (pods and the migration Job on a first
    install): each waits for the lock, then finds the schema at head. None fails, none repeats."""
    url = make_database_url(f"race-{service}")
    code = ("import sys; from gatehouse.infra.db import upgrade; from gatehouse.cli.migrate import "
            f"migrations_dir; upgrade(sys.argv[1], migrations_dir({service!r}))")
    procs = [subprocess.Popen([sys.executable, "-c", code, url], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(4)]
    results = [(p.wait(timeout=120), p.stdout.read()) for p in procs]
    assert all(rc == 0 for rc, _ in results), [out[-2000:] for rc, out in results if rc]
    metadata = importlib.import_module(f"{service}.models").metadata
    assert schema_drift(url, migrations_dir(service), metadata) == []


def _index_names(url: str, table: str) -> set[str]:
    import asyncio

    from sqlalchemy import inspect

    from gatehouse.infra.db import make_engine

    async def main():
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(lambda sync: {ix["name"] for ix in inspect(sync).get_indexes(table)})
        finally:
            await engine.dispose()

    return asyncio.run(main())


def test_uploadgw_0002_drops_the_unused_sha256_index_and_downgrades(make_database_url):
    """A database made by 0001 (an installed gateway) loses `ix_files_sha256` on upgrade, which no
    query reads and every upload wrote; the downgrade puts it back."""
    from alembic import command

    from gatehouse.infra.db import _alembic_config, upgrade

    url, where = make_database_url("uploadgw-0002"), migrations_dir("uploadgw")
    upgrade(url, where, "0001")
    assert "ix_files_sha256" in _index_names(url, "files")
    upgrade(url, where)
    assert "ix_files_sha256" not in _index_names(url, "files")
    assert {"ix_files_path", "ix_files_project_id", "ix_files_release_live"} <= _index_names(url, "files")
    command.downgrade(_alembic_config(url, where), "0001")
    assert "ix_files_sha256" in _index_names(url, "files")
