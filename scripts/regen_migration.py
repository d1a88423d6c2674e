"""(Re)generate a service's initial Alembic migration from its models.

Until the first release there is one migration per service, `0001_initial`, regenerated from the
models against an empty database: `python scripts/regen_migration.py authsvc`. After a release,
add new revisions with `alembic revision --autogenerate` instead of running this.
"""

from __future__ import annotations

import importlib
import pathlib
import sys
import tempfile

from alembic import command
from alembic.config import Config

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main(service: str) -> None:
    importlib.import_module(f"{service}.models")
    location = ROOT / service / "migrations"
    versions = location / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    for old in versions.glob("0001_*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Config()
        cfg.set_main_option("script_location", str(location))
        cfg.set_main_option("sqlalchemy.url", f"sqlite+aiosqlite:///{tmp}/empty.db")
        command.revision(cfg, message="initial", autogenerate=True, rev_id="0001")
    for new in versions.glob("0001_*.py"):
        new.rename(versions / "0001_initial.py")
    print(f"wrote {service}/migrations/versions/0001_initial.py")


if __name__ == "__main__":
    main(sys.argv[1])
