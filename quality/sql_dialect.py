"""The SQLAlchemy dialect Great Expectations reads the raw zone through: duckdb-engine's, with
every result read in full when its statement runs.

Why: DuckDB's Python connection is its own cursor, so a connection's result lives only until the
next statement on it, and SQLAlchemy rolls a connection back when it goes back to the pool. Great
Expectations returns the connection before it fetches the rows (``execute_query`` fetches after its
``with`` block), so with duckdb-engine as it is every metric query reads an empty result and each
expectation fails with an ``IndexError``. Reading the rows at execution (SQLAlchemy's own
fully-buffered strategy, meant for results "delivered after the database conversation can not be
continued") fixes that for every query; metric queries return one row, so nothing large is held.

Imported only when the suites run (it imports SQLAlchemy and duckdb-engine).
"""

from __future__ import annotations

from typing import Any

from duckdb_engine import Dialect as DuckDBDialect
from sqlalchemy import text
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.postgresql.psycopg2 import PGExecutionContext_psycopg2
from sqlalchemy.engine import Connection, reflection
from sqlalchemy.engine import cursor as sa_cursor
from sqlalchemy.engine.interfaces import ReflectedColumn, ReflectedPrimaryKeyConstraint
from sqlalchemy.types import NullType

DRIVER = "duckdb+parcours"
"""The URL scheme of this dialect (``duckdb+parcours:///:memory:``)."""


class BufferedExecutionContext(PGExecutionContext_psycopg2):
    """duckdb-engine's context (PostgreSQL's, which its dialect inherits), reading results in full."""

    def post_exec(self) -> None:
        super().post_exec()
        if self.cursor is not None and self.cursor.description is not None:
            self.cursor_fetch_strategy = sa_cursor.FullyBufferedCursorFetchStrategy(
                self.cursor, alternate_description=self.cursor.description
            )


class BufferedDuckDBDialect(DuckDBDialect):
    """duckdb-engine's dialect, reading results in full, and answering Great Expectations' reflection of a
    table (its ``table.column_types`` metric, once per table) from DuckDB's own catalogue.

    Why: duckdb-engine reflects through PostgreSQL's catalogue queries, which DuckDB cannot run (a
    primary key's needs the ``regclass`` type, columns' ``pg_collation``): Great Expectations catches
    both failures and falls back to the column names of a ``select * ... limit 1``, with no type and no
    primary key. Building, sending and unwinding the two failing queries cost about 0.3 s of the demo's
    suites (18 tables). These answer what that fallback found (the names, in the table's order; the
    primary key, none in the suites' catalogue), from ``duckdb_columns()`` and ``duckdb_constraints()``,
    so every metric, expectation and outcome is the same. Each column's type is SQLAlchemy's unknown type
    (``NullType``), as the fallback knew none: a real type would change what Great Expectations checks
    (its ``between`` refuses a column whose type is text, where it compares today)."""

    execution_ctx_cls = BufferedExecutionContext
    supports_statement_cache = False

    @reflection.cache
    def get_columns(
        self, connection: Connection, table_name: str, schema: str | None = None, **kw: Any
    ) -> list[ReflectedColumn]:
        rows = connection.execute(
            text(
                "select column_name from duckdb_columns() where table_name = :table "
                "and schema_name = coalesce(:schema, current_schema()) order by column_index"
            ),
            {"table": table_name, "schema": schema},
        )
        return [{"name": name, "type": NullType(), "nullable": True, "default": None} for (name,) in rows]

    @reflection.cache
    def get_pk_constraint(
        self, connection: Connection, table_name: str, schema: str | None = None, **kw: Any
    ) -> ReflectedPrimaryKeyConstraint:
        rows = connection.execute(
            text(
                "select constraint_column_names from duckdb_constraints() where table_name = :table "
                "and schema_name = coalesce(:schema, current_schema()) and constraint_type = 'PRIMARY KEY'"
            ),
            {"table": table_name, "schema": schema},
        ).fetchall()
        return {"constrained_columns": list(rows[0][0]) if rows else [], "name": None}


def register() -> str:
    """Make ``duckdb+parcours`` known to SQLAlchemy in this process; returns the scheme."""
    registry.register("duckdb.parcours", __name__, "BufferedDuckDBDialect")
    return DRIVER


def engine_arguments(config: dict[str, Any]) -> dict[str, Any]:
    """``create_engine`` arguments: DuckDB's settings for every connection (memory limit, spill
    folder, threads), as the warehouse's own connections get them."""
    return {"connect_args": {"config": dict(config)}}
