"""The upload path's SQL, built once with bound parameters.

Building statements per request costs more than running them on SQLite. Every statement is
`Prepared`: compiled once per dialect and run on the driver's cursor inside the upload's
transaction (PRECHECK's values are numbers, strings and flags, as the driver returns them).
"""

from __future__ import annotations

from sqlalchemy import and_, bindparam, literal, literal_column, select

from gatehouse.infra.prepared import Prepared, insert_of
from uploadgw.models import File, Filename, Project, ProjectLimits, Release

projects, releases, files = Project.__table__, Release.__table__, File.__table__

_live_project = and_(projects.c.normalized_name == bindparam("name"), projects.c.deleted_at.is_(None))
_live_id = select(projects.c.id).where(_live_project).scalar_subquery()
_live_file = and_(files.c.filename == bindparam("filename"), files.c.deleted_at.is_(None))
_release_id = select(releases.c.id).where(releases.c.project_id == _live_id,
                                          releases.c.canonical_version == bindparam("version")).scalar_subquery()
_limits = ProjectLimits.__table__
# 'sdist' written into the SQL, not bound: SQLite re-prepares a statement on every run when a bound
# value is compared with a column that a partial index's WHERE names (uq_files_release_sdist), which
# made PRECHECK cost five times its work.
_SDIST = literal_column("'sdist'")

# Everything the upload needs to know before the bytes: limits, room, the filename's history, sdist.
PRECHECK = Prepared(select(
    select(_limits.c.file_size_limit).where(_limits.c.normalized_name == bindparam("name")).scalar_subquery(),
    select(_limits.c.total_size_limit).where(_limits.c.normalized_name == bindparam("name")).scalar_subquery(),
    select(projects.c.total_size).where(_live_project).scalar_subquery(),
    _live_id,
    select(literal(True)).where(Filename.__table__.c.filename == bindparam("filename")).scalar_subquery(),
    select(files.c.sha256).where(_live_file).scalar_subquery(),
    select(files.c.blake2_256).where(_live_file).scalar_subquery(),
    select(literal(True)).where(files.c.release_id == _release_id, files.c.packagetype == _SDIST,
                                files.c.deleted_at.is_(None)).limit(1).scalar_subquery(),
))


def _project_upsert(dialect_insert):
    stmt = dialect_insert(projects).values(
        id=bindparam("project_id"), name=bindparam("project_name"), normalized_name=bindparam("normalized"),
        serial=1, total_size=bindparam("size"), created_at=bindparam("now"))
    return stmt.on_conflict_do_update(
        index_elements=[projects.c.id],
        set_={"serial": projects.c.serial + 1, "total_size": projects.c.total_size + bindparam("size"),
              "name": bindparam("project_name")},
        where=projects.c.deleted_at.is_(None),
    ).returning(projects.c.total_size)


def _release_insert(dialect_insert):
    stmt = dialect_insert(releases).values(
        id=bindparam("release_id"), project_id=bindparam("project_id"), project_name=bindparam("project_name"),
        version=bindparam("version"), canonical_version=bindparam("canonical_version"), yanked=False,
        yanked_reason="", requires_python=bindparam("requires_python"), created_at=bindparam("now"))
    return stmt.on_conflict_do_nothing(index_elements=[releases.c.project_id, releases.c.canonical_version]) \
        .returning(releases.c.id)


# Upsert the project row (serial + 1, size + this file), insert the release unless it exists.
PROJECT_UPSERT = Prepared(_project_upsert)
RELEASE_INSERT = Prepared(_release_insert)
# (id, deleted_at, version): raw driver values (deleted_at is only tested for None).
RELEASE_LOOKUP = Prepared(select(releases.c.id, releases.c.deleted_at, releases.c.version).where(
    releases.c.project_id == bindparam("project_id"), releases.c.canonical_version == bindparam("canonical_version")))
FILENAME_INSERT = Prepared(insert_of(Filename.__table__))
FILE_INSERT = Prepared(insert_of(files))
