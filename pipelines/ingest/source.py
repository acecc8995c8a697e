"""A table read from one file, held in an engine connection for its checks.

Readers put what they read here: the engine's own CSV reader writes straight into a table, the
others (XLSX through calamine, Parquet and JSON Lines through Polars) hand over an Arrow-backed
frame without copying it. Columns are named by position (``c0``, ``c1``...): a header is data
from an agency and never reaches SQL as a name.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from pipelines.warehouse import Connection

SOURCE_ROW = "_source_row"
"""A row's line in its file (CSV, XLSX: header = 1)."""
POSITION = "_position"
"""A row's place in its table (from 0): orders rows when line numbers are unknown."""


@dataclass(frozen=True)
class SourceTable:
    con: Connection
    name: str
    """The table holding the file's columns ``c0``, ``c1``..."""
    columns: list[str]
    """The file's column names, normalised, in order."""
    types: list[str]
    """Each column's engine type (``VARCHAR`` for text)."""
    rows_sql: str
    """A FROM clause giving the columns, ``_source_row`` and ``_position`` of every row."""

    def column(self, index: int) -> str:
        return f'"c{index}"'

    @property
    def height(self) -> int:
        return int(self.con.execute(f"select count(*) from {self.name}").fetchall()[0][0])

    def frame(self) -> pl.DataFrame:
        """The rows as a Polars frame named by the file's columns, with ``_source_row`` (for tests and
        small tables: the engine keeps the real work)."""
        named = ", ".join(f'"c{i}" as "{c.replace(chr(34), chr(34) * 2)}"' for i, c in enumerate(self.columns))
        return self.con.sql(
            f"select {named}{', ' if named else ''}{SOURCE_ROW} from {self.rows_sql} order by {POSITION}"
        ).pl()


def describe(con: Connection, name: str, columns: list[str], rows_sql: str) -> SourceTable:
    # The table's own columns (``describe``), not the catalogue's list of every column (``duckdb_columns()``:
    # milliseconds a file).
    quoted = '"' + name.replace('"', '""') + '"'
    types = {str(row[0]): str(row[1]) for row in con.execute(f"describe {quoted}").fetchall()}
    return SourceTable(con, name, columns, [str(types[f"c{i}"]) for i in range(len(columns))], rows_sql)


def source_from_frame(con: Connection, frame: pl.DataFrame, name: str) -> SourceTable:
    """A frame (the file's columns, and ``_source_row`` when the reader numbered its rows) as a table."""
    data = [c for c in frame.columns if c != SOURCE_ROW]
    renamed = frame.select(
        *(pl.col(c).alias(f"c{i}") for i, c in enumerate(data)),
        (pl.col(SOURCE_ROW).cast(pl.Int64) if SOURCE_ROW in frame.columns else pl.lit(None, dtype=pl.Int64)).alias(
            SOURCE_ROW
        ),
    )
    # A column of nothing but nulls has no type: text, like an empty CSV column.
    renamed = renamed.with_columns(pl.col(c).cast(pl.String) for c, t in renamed.schema.items() if t == pl.Null)
    con.register("_incoming_source", renamed)
    try:
        con.execute(f'create or replace temp table "{name}" as select * from _incoming_source')
    finally:
        con.unregister("_incoming_source")
    return describe(con, name, data, f'(select *, rowid as {POSITION} from "{name}")')
