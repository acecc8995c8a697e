"""All DuckDB access in one place: connections, loading frames, running models, publishing.

The pipeline owns one working database (one writer). Dashboards never open it: they read the
serving snapshot, a separate file that ``publish_snapshot`` swaps in atomically.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from pipelines.settings import engine_settings

Connection = duckdb.DuckDBPyConnection
"""A DuckDB connection, for the annotations of modules that must not import ``duckdb`` themselves."""
Error = duckdb.Error
QUERY_ERRORS: tuple[type[duckdb.Error], ...] = (
    duckdb.ParserException,
    duckdb.BinderException,
    duckdb.CatalogException,
    duckdb.OutOfMemoryException,
    duckdb.IOException,
)
"""Errors about the query or the machine, whose message quotes SQL or paths, never data. Others (a
conversion or a constraint) quote the value that failed, a case value."""

ENGINE_FAILURES: tuple[type[BaseException], ...] = (
    duckdb.ConnectionException,
    duckdb.FatalException,
    duckdb.InternalException,
    duckdb.InterruptException,
    duckdb.IOException,
    duckdb.OutOfMemoryException,
    MemoryError,
)
"""What the engine raises about its own state (closed, invalidated, interrupted, out of memory, a spill or a
read the disk refused), not about what a file holds: reading a file that fails so is a processing error (tried
again), not an unreadable file (which is never read again)."""

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def quote_identifier(name: str) -> str:
    """Table and column names come from our own files, but are still checked before they reach SQL."""
    if not IDENTIFIER.match(name):
        raise ValueError(f"not a valid SQL identifier: {name!r}")
    return f'"{name}"'


DEFAULT_MEMORY_LIMIT = "2GB"
"""DuckDB's memory limit on every connection the pipeline opens, unless ``PARCOURS_DUCKDB_MEMORY_LIMIT``
says otherwise. DuckDB's own default is 80% of the machine's memory, and it keeps what its joins and
aggregations hold up to it: the models stage of a million persons peaked at 7.3 GiB. Under this limit
DuckDB spills to disk instead: the same stage peaked at 2.3 GiB, for a fifth more CPU time
(docs/benchmarks-notes.md). It leaves room, under 4 GiB, for the Python side of the process."""


def share_of_memory_limit(limit: str, share: float) -> str:
    """``share`` of ``limit`` (a DuckDB memory size), in its unit: ``share_of_memory_limit("2GB", 0.5)`` is
    ``1GB``, of ``80%`` (of the machine's memory) ``40%``; units as DuckDB reads them (``2gb``, ``2 GiB``,
    ``2G``). A limit written otherwise (DuckDB's ``-1``, none) is returned as it is."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]i?B?|%)", limit.strip(), re.IGNORECASE)
    if match is None:
        return limit
    return f"{float(match.group(1)) * share:.3f}".rstrip("0").rstrip(".") + match.group(2)


_SIZE_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}
_SIZE_UNITS.update({f"{unit}I": 2 ** (10 * i) for i, unit in enumerate("KMGTP", start=1)})


def memory_size_bytes(size: str) -> int | None:
    """A memory size as DuckDB reads it (``2GB``, ``200mb``, ``2G``) or shows it (``1.8 GiB``, ``512 bytes``),
    in bytes; None for a percentage or anything else."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(?:([KMGTP]i?)?B?|bytes)", size.strip(), re.IGNORECASE)
    if match is None:
        return None
    return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").upper()])


def memory_limit_bytes(con: duckdb.DuckDBPyConnection) -> int | None:
    """DuckDB's memory limit on ``con``, in bytes (from what it shows, rounded: ``1.8 GiB``)."""
    return memory_size_bytes(str(con.execute("select current_setting('memory_limit')").fetchall()[0][0]))


IDLE_MEMORY_LIMIT = "64MB"
"""DuckDB's limit on a connection while its process waits for another (``buffers_released``)."""


@contextmanager
def memory_limited(con: duckdb.DuckDBPyConnection, limit: str, database: Path | None) -> Iterator[None]:
    """While the block runs, ``con`` under DuckDB's ``limit`` (it evicts what it held above it), then the
    pipeline's limit (``connection_config``) again. A connection whose pinned blocks do not fit keeps its own."""
    try:
        con.execute(f"set memory_limit = '{limit}'")
    except duckdb.Error:
        yield
        return
    try:
        yield
    finally:
        con.execute(f"set memory_limit = '{connection_config(database)['memory_limit']}'")


@contextmanager
def buffers_released(con: duckdb.DuckDBPyConnection, database: Path | None) -> Iterator[None]:
    """While the block runs, ``con`` keeps only what it must: its limit lowered to ``IDLE_MEMORY_LIMIT``
    makes DuckDB evict every block it can, and give the memory back (at 100,000 persons a run's process
    went from 528 to 219 MiB, as low as closing the connection), then the pipeline's limit
    (``connection_config``) again. For a process that waits on another one (the contract suites' child),
    so that the two hold one limit between them, not two. The connection stays open: a closed one would
    let a reader (the landing sensor, a dashboard's refresh) take the file, and the run could not open it
    again. A connection whose pinned blocks do not fit the lower limit keeps its own."""
    with memory_limited(con, IDLE_MEMORY_LIMIT, database):
        yield


@contextmanager
def _setting_in_block(con: duckdb.DuckDBPyConnection, name: str, value: str, after: str) -> Iterator[None]:
    """DuckDB's setting ``name`` at ``value`` while the block runs, at ``after`` once it ends, failed or not."""
    con.execute(f"set {name} = '{value}'")
    try:
        yield
    finally:
        con.execute(f"set {name} = '{after}'")


@contextmanager
def join_sides_as_written(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """While the block runs, DuckDB builds each hash join's table on the side the SQL puts on its right (its
    ``build_side_probe_side`` optimizer off), then chooses again: for a query whose joins are written with the
    narrow side on the right, where DuckDB's estimates would pick a wide one (``dataset.study_dataset``)."""
    before = str(scalar(con, "select current_setting('disabled_optimizers')"))
    disabled = ",".join(filter(None, [before, "build_side_probe_side"]))
    with _setting_in_block(con, "disabled_optimizers", disabled, before):
        yield


@contextmanager
def memory_share(con: duckdb.DuckDBPyConnection, share: float) -> Iterator[None]:
    """While the block runs, DuckDB's limit on ``con`` is ``share`` of the pipeline's (``connection_config``), then
    the pipeline's again: for a stage whose Python side holds as much as its queries do (the studies' frames), so
    that DuckDB spills sooner instead of filling the whole limit beside them. A limit written otherwise (none,
    DuckDB's ``-1``) is left as it is."""
    configured = str(connection_config(None)["memory_limit"])
    lowered = share_of_memory_limit(configured, share)
    if lowered == configured:
        yield
        return
    with _setting_in_block(con, "memory_limit", lowered, configured):
        yield


def spill_folder(database: Path) -> Path:
    """Where DuckDB spills what does not fit under its limit, for a database file: beside it, in the
    run's data folder (DuckDB's own choice too: ``<database>.tmp``); set explicitly so that the run's
    metadata can say it, and so that ``PARCOURS_DUCKDB_TEMP_DIR`` can move it to a disk with room."""
    return database.with_name(f"{database.name}.tmp")


def connection_config(database: Path | None) -> dict[str, str | bool | int | float | list[str]]:
    """DuckDB's settings for a pipeline connection, decided here and only here: the memory limit
    (``DEFAULT_MEMORY_LIMIT``) and the spill folder (``spill_folder``; an in-memory database gets none
    unless the environment names one: it spills nowhere rather than into the working directory), each
    overridden by its ``PARCOURS_DUCKDB_*`` variable (``pipelines.settings.ENGINE_SETTINGS``, threads too)."""
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": DEFAULT_MEMORY_LIMIT,
        "temp_directory": "" if database is None else str(spill_folder(database)),  # "": DuckDB spills nowhere
        # jemalloc's background threads give the memory a finished query freed back to the system. Without
        # them DuckDB's allocator kept it until the next large allocation: the studies' dataset query at
        # 1,000,000 persons left 1.6 GiB resident under the frames the studies then built (docs/benchmarks-notes.md).
        "allocator_background_threads": True,
    }
    return {**config, **engine_settings()}


def effective_settings(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """What DuckDB applies on ``con`` (memory limit, spill folder, threads, insertion order), as it
    reports them: for a run's metadata."""
    names = ("memory_limit", "temp_directory", "threads", "preserve_insertion_order")
    values = con.execute("select " + ", ".join(f"current_setting('{n}')" for n in names)).fetchall()[0]
    return {f"duckdb_{n}": str(v) for n, v in zip(names, values, strict=True)}


@contextmanager
def connect(
    path: Path, read_only: bool = False, config: Mapping[str, str | bool | int | float | list[str]] | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection, with the pipeline's engine settings (``connection_config``: memory
    limit, spill folder, threads), or ``config`` when given. Read-only connections require the file to exist."""
    if read_only and not path.exists():
        raise FileNotFoundError(f"no database at {path}")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only, config=dict(config or connection_config(path)))
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
    # fetchall, not fetchone: DuckDB 2.0 keeps a half-read result open and refuses the next query.
    rows = con.execute(sql, params).fetchall() if params is not None else con.execute(sql).fetchall()
    return rows[0][0] if rows else None


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(scalar(con, "select count(*) from information_schema.tables where table_name = ?", [name]))


def list_tables(con: duckdb.DuckDBPyConnection, prefix: str = "") -> list[str]:
    rows = con.execute(
        "select table_name from information_schema.tables where table_name like ? order by table_name",
        [prefix + "%"],
    ).fetchall()
    return [r[0] for r in rows]


def memory_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory database (a test's, a tool's), with the same Python API and settings as the working one."""
    return duckdb.connect(":memory:", config=connection_config(None))


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame) -> Iterator[None]:
    """``frame`` readable as ``name`` by the queries of the block."""
    con.register(name, frame)
    try:
        yield
    finally:
        con.unregister(name)


def replace_table(con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame) -> None:
    """Create or replace ``name`` with the frame's content (types kept); a view of that name goes."""
    if scalar(con, "select table_type from information_schema.tables where table_name = ?", [name]) == "VIEW":
        con.execute(f"drop view {quote_identifier(name)}")
    con.register("_incoming_frame", frame)
    try:
        con.execute(f"create or replace table {quote_identifier(name)} as select * from _incoming_frame")
    finally:
        con.unregister("_incoming_frame")


SQL_TYPES = frozenset({"VARCHAR", "BIGINT", "DOUBLE", "DATE", "BOOLEAN", "TIMESTAMP"})


def _checked_type(kind: str) -> str:
    if kind not in SQL_TYPES:
        raise ValueError(f"not a column type Parcours uses: {kind!r}")
    return kind


def create_empty_table(
    con: duckdb.DuckDBPyConnection, name: str, columns: Sequence[tuple[str, str]], replace: bool = True
) -> None:
    spec = ", ".join(f"{quote_identifier(c)} {_checked_type(t)}" for c, t in columns)
    verb = "create or replace table" if replace else "create table if not exists"
    con.execute(f"{verb} {quote_identifier(name)} ({spec})")


def table_columns(con: duckdb.DuckDBPyConnection, name: str) -> list[str]:
    rows = con.execute(
        "select column_name from information_schema.columns where table_name = ? order by ordinal_position", [name]
    ).fetchall()
    return [r[0] for r in rows]


def add_column(con: duckdb.DuckDBPyConnection, table: str, column: str, kind: str) -> None:
    con.execute(f"alter table {quote_identifier(table)} add column {quote_identifier(column)} {_checked_type(kind)}")


def insert_frame(con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame) -> None:
    con.register("_incoming_frame", frame)
    try:
        columns = ", ".join(quote_identifier(c) for c in frame.columns)
        con.execute(f"insert into {quote_identifier(name)} ({columns}) select {columns} from _incoming_frame")
    finally:
        con.unregister("_incoming_frame")


def duplicates_in_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    incoming: pl.DataFrame,
    key: Sequence[str],
    values: Sequence[str],
    excluding: Sequence[str],
) -> pl.DataFrame:
    """Rows of ``incoming`` (with a ``_position`` column) whose key is already in ``table``.

    Rows stored from the files in ``excluding`` (about to be replaced) do not count. Returns
    ``_position`` and ``identical`` (whether a stored row has the same values everywhere).
    """
    join = " and ".join(f"stored.{quote_identifier(k)} = incoming.{quote_identifier(k)}" for k in key)
    others = [v for v in values if v not in key]
    same = (
        " and ".join(
            f"stored.{quote_identifier(v)} is not distinct from incoming.{quote_identifier(v)}" for v in others
        )
        or "true"
    )
    con.register("_incoming_rows", incoming)
    try:
        return query(
            con,
            f"select incoming._position, bool_or({same}) as identical "
            f"from _incoming_rows as incoming join {quote_identifier(table)} as stored on {join} "
            "where not list_contains($excluding, stored._source_sha256) "
            "group by incoming._position order by incoming._position",
            {"excluding": list(excluding)},
        )
    finally:
        con.unregister("_incoming_rows")


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Everything in the block lands together, or nothing does (rolled back on any exception)."""
    con.execute("begin transaction")
    try:
        yield
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


def run_model(con: duckdb.DuckDBPyConnection, name: str, select_sql: str, view: bool = False) -> int:
    """Materialise one SQL model as a table (or, with ``view``, define it as a view) and return its row count.

    A model that changes kind between runs replaces the other kind's object of the same name."""
    target = quote_identifier(name)
    kind = scalar(con, "select table_type from information_schema.tables where table_name = ?", [name])
    if kind is not None and (kind == "VIEW") != view:
        con.execute(f"drop {'table' if view else 'view'} {target}")
    if view:
        con.execute(f"create or replace view {target} as {select_sql}")
        return int(scalar(con, f"select count(*) from {target}"))
    rows = con.execute(f"create or replace table {target} as {select_sql}").fetchall()  # reports its row count
    return int(rows[0][0])


def publish_snapshot(
    con: duckdb.DuckDBPyConnection, tables: Sequence[str], target: Path, metadata: dict[str, str]
) -> Path:
    """Copy ``tables`` into a new DuckDB file and swap it in place of ``target`` atomically."""
    swap_in(write_snapshot(target, {}, metadata, con=con, copy=tables), target)
    return target


def write_snapshot(
    target: Path,
    frames: Mapping[str, pl.DataFrame],
    metadata: Mapping[str, str],
    con: duckdb.DuckDBPyConnection | None = None,
    copy: Sequence[str] = (),
) -> Path:
    """A new DuckDB file beside ``target``, not yet in service: ``copy`` tables from ``con``, then ``frames``
    and ``serving_metadata``, in one transaction. ``swap_in`` puts it in service; until then no reader can open
    it by name. ``con`` is left open (a caller writing many files passes one in-memory connection, opened once:
    ``memory_connection``); without it, one is opened and closed here."""
    target.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    temporary = target.with_name(f".{target.stem}.{stamp}.{os.getpid()}.tmp")
    own = con is None
    writer = memory_connection() if con is None else con
    alias = "serving_snapshot"
    writer.execute(f"attach '{_sql_path(temporary)}' as {alias}")
    try:
        # One transaction for the whole file: a table per commit made each file several commits to its log.
        with transaction(writer):
            for table in copy:
                t = quote_identifier(table)
                writer.execute(f"create table {alias}.{t} as select * from {t}")
            meta = pl.DataFrame(
                {"key": list(metadata), "value": list(metadata.values())},
                schema=[("key", pl.String), ("value", pl.String)],
            )
            for name, frame in {**frames, "serving_metadata": meta}.items():
                writer.register("_snapshot_frame", frame)
                try:
                    writer.execute(f"create table {alias}.{quote_identifier(name)} as select * from _snapshot_frame")
                finally:
                    writer.unregister("_snapshot_frame")
    except BaseException:
        writer.execute(f"detach {alias}")
        if own:
            writer.close()
        temporary.unlink(missing_ok=True)
        raise
    writer.execute(f"detach {alias}")
    if own:
        writer.close()
    return temporary


def swap_in(temporary: Path, target: Path) -> None:
    """Rename a written snapshot over ``target``: a reader sees the previous file or the new one, never half."""
    temporary.replace(target)


def read_tables(
    path: Path,
    exclude: Sequence[str] = (),
    con: duckdb.DuckDBPyConnection | None = None,
    include: Sequence[str] | None = None,
) -> dict[str, pl.DataFrame]:
    """Every table of a (small) DuckDB file, read-only, by name; ``include``: only those of these the file has.
    The file is attached read-only to ``con`` (an in-memory connection, ``memory_connection``), read and
    detached, so that a caller reading many files opens one connection for all of them (opening one took about
    as long as reading a release file); without ``con``, one is opened and closed here."""
    if not path.exists():
        raise FileNotFoundError(f"no database at {path}")
    if con is None:
        with closing(memory_connection()) as own:
            return read_tables(path, exclude, own, include)
    alias = "read_back"
    con.execute(f"attach '{_sql_path(path)}' as {alias} (read_only)")
    try:
        names = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_catalog = ? order by table_name", [alias]
            ).fetchall()
        ]
        wanted = [t for t in names if t not in exclude and (include is None or t in include)]
        return {t: query(con, f"select * from {alias}.{quote_identifier(t)}") for t in wanted}
    finally:
        con.execute(f"detach {alias}")


_TEMPORARY = re.compile(r"^\..+?(?:\.(\d+))?\.tmp(?:\.wal)?$")
STALE_AFTER_SECONDS = 6 * 3600
"""A temporary file whose writer still runs is left alone, unless it is older than this (the pid reused)."""


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete what a killed publication left in ``folder``: hidden ``.tmp`` files (``publish_snapshot``
    names them ``.<name>.<stamp>.<pid>.tmp``) and their ``.tmp.wal``, unless their writer still runs.

    Called early in every run, so that a crash never leaves a half-written snapshot behind for good.
    """
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    now = datetime.now(UTC).timestamp()
    for path in sorted(folder.iterdir()):
        match = _TEMPORARY.match(path.name)
        if match is None or not path.is_file():
            continue
        pid = int(match.group(1)) if match.group(1) else None
        recent = now - path.stat().st_mtime < STALE_AFTER_SECONDS
        if pid is not None and pid != os.getpid() and _process_alive(pid) and recent:
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def read_csv_into(
    con: duckdb.DuckDBPyConnection, table: str, path: Path, delimiter: str, width: int, max_line_bytes: int = 8 << 20
) -> pl.DataFrame:
    """Every field of a UTF-8 CSV as text into ``table`` of ``con`` (columns ``c0``, ``c1``... in file
    order, rows in file order), and the records that could not be split into fields: one row per
    rejected record with its line, DuckDB's error type and the first column concerned."""
    name = quote_identifier(table)
    rejects, scans = quote_identifier(f"{table}_rejects"), quote_identifier(f"{table}_scans")
    schema = {f"c{i}": "VARCHAR" for i in range(width)}
    con.execute(f"drop table if exists {rejects}")
    con.execute(f"drop table if exists {scans}")
    con.execute(
        f"create or replace temp table {name} as select * from read_csv($path, delim = $delim, header = true, "
        "quote = '\"', escape = '\"', columns = $columns, auto_detect = false, strict_mode = true, "
        f"store_rejects = true, rejects_table = '{table}_rejects', rejects_scan = '{table}_scans', "
        "max_line_size = $max_line, parallel = true)",
        {"path": str(path), "delim": delimiter, "columns": schema, "max_line": max_line_bytes},
    )
    return query(
        con,
        "select line, any_value(error_type order by column_idx) as error_type, "
        "any_value(regexp_extract(column_name, '^c([0-9]+)$', 1) order by column_idx) as column_index "
        f"from {rejects} group by line order by line",
    )


def scratch_connection(temporary: Path | None = None, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory engine for one file's checks: whatever happens there never touches the warehouse.
    ``temporary``: where it may spill; ``memory_limit``: DuckDB's limit (say ``2GB``)."""
    con = memory_connection()
    if temporary is not None:
        temporary.mkdir(parents=True, exist_ok=True)
        con.execute(f"set temp_directory = '{_sql_path(temporary)}'")
    if memory_limit:
        if memory_size_bytes(memory_limit) is None:
            raise ValueError(f"not a memory size: {memory_limit!r}")
        con.execute(f"set memory_limit = '{memory_limit}'")
    con.execute("set preserve_insertion_order = true")
    return con


def copy_to_parquet(
    con: duckdb.DuckDBPyConnection, select_sql: str, target: Path, params: dict[str, Any] | None = None
) -> int:
    """Write the rows of ``select_sql`` to one Parquet file (zstd); returns the rows written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    rows = con.execute(
        f"copy ({select_sql}) to '{_sql_path(target)}' (format parquet, compression zstd, row_group_size 1000000)",
        params,
    ).fetchall()
    return int(rows[0][0]) if rows else 0


def parquet_list_sql(paths: Sequence[Path]) -> str:
    """A ``read_parquet`` list of our own files, as SQL (paths quoted)."""
    return "[" + ", ".join(f"'{_sql_path(p)}'" for p in paths) + "]"


def sql_literal(text: str) -> str:
    """One of our own constants (a code, a column name, a file's hash) as a SQL string literal; case
    values are bound as parameters, never written into SQL."""
    return "'" + text.replace("'", "''") + "'"


def _sql_path(path: Path) -> str:
    # ATTACH takes no bound parameter; the path is ours, but quotes are still escaped.
    return str(path).replace("'", "''")
