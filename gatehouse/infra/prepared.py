"""Hot-path statements run on the driver's cursor, inside the transaction SQLAlchemy began.

Executing a cached Core statement through SQLAlchemy costs several times the Python the driver
needs for a small INSERT (execution context, parameter dictionaries, result wrapping). The upload path and the project created by a first upload run five and three
such statements per request. `Prepared` keeps SQLAlchemy for what it is good at - it compiles the
statement once per dialect and its type objects convert every value (so SQLite datetimes are stored
exactly as the ORM stores them) - and hands the SQL and the values to the DBAPI cursor itself.

Every parameter must be an explicit `bindparam` (Python-side column defaults are not applied), and
results come back as the driver returns them (no result processing: use it for ids and numbers).
Driver errors are re-raised as SQLAlchemy's (`IntegrityError`, ...), as callers expect. A statement
that needs the dialect's own INSERT (ON CONFLICT) is written once, as a function of that `insert`;
the connection it runs on picks the dialect.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, bindparam, insert
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import ClauseElement, Insert
from sqlalchemy.sql.compiler import SQLCompiler

# `sqlite.insert` or `postgresql.insert`: what a statement with ON CONFLICT is written with.
DialectInsert = Callable[[Table], Any]
_INSERTS: Mapping[str, DialectInsert] = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


@dataclasses.dataclass(frozen=True)
class _Form:
    sql: str
    names: tuple[str, ...]  # the value for each positional placeholder, in order
    literals: Mapping[str, Any]  # values bound in the statement itself
    processors: tuple[Callable[[Any], Any] | None, ...]


def insert_of(table: Table, columns: Iterable[str] | None = None) -> Insert:
    """`INSERT INTO table (columns...) VALUES (:column, ...)`: every value named and required
    (all the table's columns by default)."""
    names = [column.name for column in table.c] if columns is None else list(columns)
    return insert(table).values({name: bindparam(name) for name in names})


class Prepared:
    """One statement, compiled once per dialect and run on the driver's cursor (see the module).

    `statement` is the statement itself, or (for ON CONFLICT) a function that writes it with the
    dialect's own `insert`: it gets `sqlite.insert` or `postgresql.insert`, whichever the
    connection it runs on speaks."""

    def __init__(self, statement: ClauseElement | Callable[[DialectInsert], ClauseElement]) -> None:
        self._statement = statement
        self._forms: dict[str, _Form] = {}

    def _compiled(self, dialect: Dialect) -> SQLCompiler:
        statement = self._statement
        if not isinstance(statement, ClauseElement):
            statement = statement(_INSERTS[dialect.name])
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        return compiled

    def _form(self, dialect: Dialect) -> _Form:
        form = self._forms.get(dialect.name)
        if form is None:
            compiled = self._compiled(dialect)
            if compiled.positiontup is None:
                raise ValueError(f"{dialect.name}: a positional paramstyle is needed")
            binds = compiled.binds  # placeholder name -> BindParameter
            names = tuple(compiled.positiontup)
            literals = {name: binds[name].effective_value for name in names if not binds[name].required}
            processors = tuple(binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names)
            form = _Form(str(compiled), names, literals, processors)
            self._forms[dialect.name] = form
        return form

    @staticmethod
    def _values(form: _Form, params: Mapping[str, Any]) -> tuple[Any, ...]:
        literals = form.literals
        return tuple(
            (value if process is None or value is None else process(value))
            for value, process in zip(
                (params[name] if name not in literals else literals[name] for name in form.names),
                form.processors))

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> Sequence[Any] | None:
        """Run the statement; the first row it returns (RETURNING, SELECT), or None."""
        form = self._form(conn.dialect)
        values = self._values(form, params)
        cursor = conn.connection.cursor()
        try:
            cursor.execute(form.sql, values)
            return cursor.fetchone() if cursor.description is not None else None
        except conn.dialect.loaded_dbapi.Error as err:
            raise translated(form.sql, values, err, conn.dialect) from err
        finally:
            cursor.close()

    def executemany(self, conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        form = self._form(conn.dialect)
        values = [self._values(form, row) for row in rows]
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(form.sql, values)
        except conn.dialect.loaded_dbapi.Error as err:
            raise translated(form.sql, values, err, conn.dialect) from err
        finally:
            cursor.close()


def translated(sql: str, values: Any, err: Exception, dialect: Dialect) -> sa_exc.StatementError:
    """A driver error as SQLAlchemy raises it (IntegrityError, OperationalError, ...)."""
    return sa_exc.DBAPIError.instance(sql, values, err, dialect.loaded_dbapi.Error, dialect=dialect)
