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
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.postgresql.psycopg2 import PGExecutionContext_psycopg2
from sqlalchemy.engine import cursor as sa_cursor

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
    execution_ctx_cls = BufferedExecutionContext
    supports_statement_cache = False


def register() -> str:
    """Make ``duckdb+parcours`` known to SQLAlchemy in this process; returns the scheme."""
    registry.register("duckdb.parcours", __name__, "BufferedDuckDBDialect")
    return DRIVER


def engine_arguments(config: dict[str, Any]) -> dict[str, Any]:
    """``create_engine`` arguments: DuckDB's settings for every connection (memory limit, spill
    folder, threads), as the warehouse's own connections get them."""
    return {"connect_args": {"config": dict(config)}}
