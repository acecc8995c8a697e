"""All DuckDB access in one place: connections, loading frames, running models, publishing.

The pipeline owns one working database (one writer). Dashboards never open it: they read the
serving snapshot, a separate file that ``publish_snapshot`` swaps in atomically.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def quote_identifier(name: str) -> str:
    """Table and column names come from our own files, but are still checked before they reach SQL."""
    if not IDENTIFIER.match(name):
        raise ValueError(f"not a valid SQL identifier: {name!r}")
    return f'"{name}"'


@contextmanager
def connect(path: Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection. Read-only connections require the file to exist."""
    if read_only and not path.exists():
        raise FileNotFoundError(f"no database at {path}")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    try:
        yield con
    finally:
        con.close()


def query(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
    relation = con.sql(sql, params=params)
    if relation is None:
        return pl.DataFrame()
    return relation.pl()


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Any:
    row = con.execute(sql, params).fetchone() if params is not None else con.execute(sql).fetchone()
    return None if row is None else row[0]


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(scalar(con, "select count(*) from information_schema.tables where table_name = ?", [name]))


def list_tables(con: duckdb.DuckDBPyConnection, prefix: str = "") -> list[str]:
    rows = con.execute(
        "select table_name from information_schema.tables where table_name like ? order by table_name",
        [prefix + "%"],
    ).fetchall()
    return [r[0] for r in rows]


def replace_table(con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame) -> None:
    """Create or replace ``name`` with the frame's content (types kept)."""
    con.register("_incoming_frame", frame)
    try:
        con.execute(f"create or replace table {quote_identifier(name)} as select * from _incoming_frame")
    finally:
        con.unregister("_incoming_frame")


def create_empty_table(con: duckdb.DuckDBPyConnection, name: str, columns: Sequence[tuple[str, str]]) -> None:
    spec = ", ".join(f"{quote_identifier(c)} {t}" for c, t in columns)
    con.execute(f"create or replace table {quote_identifier(name)} ({spec})")


def insert_frame(con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame) -> None:
    con.register("_incoming_frame", frame)
    try:
        columns = ", ".join(quote_identifier(c) for c in frame.columns)
        con.execute(f"insert into {quote_identifier(name)} ({columns}) select {columns} from _incoming_frame")
    finally:
        con.unregister("_incoming_frame")


def run_model(con: duckdb.DuckDBPyConnection, name: str, select_sql: str) -> int:
    """Materialise one SQL model as a table and return its row count."""
    con.execute(f"create or replace table {quote_identifier(name)} as {select_sql}")
    return int(scalar(con, f"select count(*) from {quote_identifier(name)}"))


def publish_snapshot(
    con: duckdb.DuckDBPyConnection, tables: Sequence[str], target: Path, metadata: dict[str, str]
) -> Path:
    """Copy ``tables`` into a new DuckDB file and swap it in place of ``target`` atomically.

    The new file is written beside the target and renamed over it, so a dashboard opening the
    target sees either the previous snapshot or the new one, never a half-written file.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    temporary = target.with_name(f".{target.stem}.{stamp}.{os.getpid()}.tmp")
    alias = "serving_snapshot"
    con.execute(f"attach '{_sql_path(temporary)}' as {alias}")
    try:
        for table in tables:
            t = quote_identifier(table)
            con.execute(f"create table {alias}.{t} as select * from {t}")
        meta = pl.DataFrame({"key": list(metadata), "value": list(metadata.values())})
        con.register("_snapshot_metadata", meta)
        con.execute(f"create table {alias}.serving_metadata as select * from _snapshot_metadata")
        con.unregister("_snapshot_metadata")
    except BaseException:
        con.execute(f"detach {alias}")
        temporary.unlink(missing_ok=True)
        raise
    con.execute(f"detach {alias}")
    temporary.replace(target)
    return target


def _sql_path(path: Path) -> str:
    # ATTACH takes no bound parameter; the path is ours, but quotes are still escaped.
    return str(path).replace("'", "''")
