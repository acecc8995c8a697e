"""The raw zone: accepted rows as Parquet, one file per entity, agency and export period.

::

    <warehouse>_raw/<entity>/agency=<agency>/period=<YYYYMM>/<sha256 prefix>-<version>.parquet

Any engine reads it (DuckDB, Spark, Polars, pandas): each file holds the contract's columns and
the lineage columns of ``raw_<entity>``. A partition is what one landing file brings (a file is
keyed by agency, entity and period), so an agency's re-sent period replaces exactly one
partition, and a Dagster partition (agency × period) can be re-run alone.

Which files are current is said by the manifest ``raw_zone_files`` in the working database, and
only by it: files are written under new names and never changed, and the manifest and the views
``raw_<entity>`` over its files change in the run's transaction. A run that fails or is killed
midway leaves files nobody lists, removed by the next run (``remove_unlisted``); readers never
see half of a run. The models read the views, so their SQL does not know where rows live.

The ledger, the quarantine and the held-back orphans stay in the working database: they are
small, updated row by row, and never leave the analysts' zone.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import polars as pl

from pipelines import warehouse
from pipelines.contract import Contract
from pipelines.warehouse import Connection

MANIFEST_TABLE = "raw_zone_files"
MANIFEST_COLUMNS = (
    ("entity", "VARCHAR"),
    ("agency_folder", "VARCHAR"),
    ("period", "VARCHAR"),
    ("sha256", "VARCHAR"),
    ("path", "VARCHAR"),
    ("rows", "BIGINT"),
    ("columns", "VARCHAR"),
    ("written_at", "TIMESTAMP"),
)
STAGING = "_staging"
"""Under the zone: each run's files before they are settled (removed with the run)."""
LINEAGE_COLUMNS = (
    ("_agency_folder", "VARCHAR"),
    ("_source_file", "VARCHAR"),
    ("_source_sha256", "VARCHAR"),
    ("_source_row", "BIGINT"),
)


def raw_table_name(entity: str) -> str:
    return f"raw_{entity}"


def raw_table_columns(contract: Contract, entity: str) -> list[tuple[str, str]]:
    return [(f.name, f.duckdb_type) for f in contract.entity(entity).fields] + list(LINEAGE_COLUMNS)


def partition_name(value: str) -> str:
    """A folder name for an agency or a period, whatever characters it has (percent-encoded, as Hive
    and Spark escape partition values)."""
    return quote(value, safe="-_") or "%00"


@dataclass(frozen=True)
class RawZone:
    root: Path

    @classmethod
    def of(cls, con: Connection) -> RawZone:
        """The zone beside the working database (``parcours.duckdb`` -> ``parcours_raw/``); an
        in-memory database gets a temporary folder that lives as long as the process."""
        rows = con.execute("select path from duckdb_databases() where database_name = current_database()").fetchall()
        path = rows[0][0] if rows else None
        if not path or path == ":memory:":
            return cls(_process_folder())
        database = Path(path).absolute()
        return cls(database.with_name(f"{database.stem}_raw"))

    def partition(self, entity: str, agency: str, period: str) -> Path:
        return self.root / entity / f"agency={partition_name(agency)}" / f"period={partition_name(period)}"

    def new_file(self, entity: str, agency: str, period: str, sha256: str) -> Path:
        """A name no file has had: a partition's file is never rewritten in place."""
        stamp = f"{time.time_ns():x}{os.getpid():x}"
        return self.partition(entity, agency, period) / f"{sha256[:16]}-{stamp}.parquet"

    def staging(self) -> Path:
        folder = self.root / STAGING / f"run-{time.time_ns():x}-{os.getpid()}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def absolute(self, relative: str) -> Path:
        return self.root / relative


_PROCESS_FOLDER: list[Path] = []


def _process_folder() -> Path:
    if not _PROCESS_FOLDER:
        folder = Path(tempfile.mkdtemp(prefix="parcours-raw-"))
        import atexit

        atexit.register(shutil.rmtree, folder, True)
        _PROCESS_FOLDER.append(folder)
    return _PROCESS_FOLDER[0]


def ensure_manifest(con: Connection) -> None:
    warehouse.create_empty_table(con, MANIFEST_TABLE, MANIFEST_COLUMNS, replace=False)


def listed_files(con: Connection, entity: str | None = None) -> pl.DataFrame:
    if not warehouse.table_exists(con, MANIFEST_TABLE):
        return pl.DataFrame(schema={c: pl.String for c, _ in MANIFEST_COLUMNS if c not in ("rows", "written_at")})
    where = "where entity = $entity" if entity is not None else ""
    return warehouse.query(
        con,
        f"select entity, agency_folder, period, sha256, path, rows, columns from {MANIFEST_TABLE} {where} "
        "order by entity, agency_folder, period, sha256",
        {"entity": entity} if entity is not None else None,
    )


def list_file(
    con: Connection,
    zone: RawZone,
    entity: str,
    agency: str,
    period: str,
    sha256: str,
    path: Path,
    rows: int,
    columns: Sequence[str],
) -> None:
    """Make ``path`` the current file of (entity, agency, file) in the manifest (in the caller's transaction)."""
    con.execute(
        f"delete from {MANIFEST_TABLE} where entity = ? and agency_folder = ? and sha256 = ?", [entity, agency, sha256]
    )
    con.execute(
        f"insert into {MANIFEST_TABLE} values (?, ?, ?, ?, ?, ?, ?, now()::timestamp)",
        [entity, agency, period, sha256, zone.relative(path), rows, json.dumps(list(columns))],
    )


def unlist_file(con: Connection, entity: str, agency: str, sha256: str) -> None:
    con.execute(
        f"delete from {MANIFEST_TABLE} where entity = ? and agency_folder = ? and sha256 = ?", [entity, agency, sha256]
    )


def view_select(con: Connection, zone: RawZone, contract: Contract, entity: str) -> str:
    """The ``select`` behind ``raw_<entity>``: the rows of the entity's listed files, with exactly the
    table's columns (a column a file lacks, written under an older contract, reads as null). It names
    files only, so any DuckDB connection can run it (the contract suites run it in their own)."""
    columns = raw_table_columns(contract, entity)
    files = listed_files(con, entity)
    present: set[str] = set()
    for text in files["columns"].to_list() if files.height else []:
        present |= set(json.loads(text))
    q = warehouse.quote_identifier
    if files.height:
        paths = [zone.absolute(p) for p in files["path"].to_list()]
        select = ", ".join(q(c) if c in present else f"cast(null as {kind}) as {q(c)}" for c, kind in columns)
        source = f"read_parquet({warehouse.parquet_list_sql(paths)}, union_by_name = true)"
    else:
        select = ", ".join(f"cast(null as {kind}) as {q(c)}" for c, kind in columns)
        source = "(select 1) where false"
    return f"select {select} from {source}"


def refresh_view(con: Connection, zone: RawZone, contract: Contract, entity: str) -> None:
    """``raw_<entity>``: ``view_select``, as a view of the working database."""
    name = warehouse.quote_identifier(raw_table_name(entity))
    query = view_select(con, zone, contract, entity)
    kind = warehouse.scalar(
        con, "select table_type from information_schema.tables where table_name = ?", [raw_table_name(entity)]
    )
    if kind == "BASE TABLE":
        con.execute(f"drop table {name}")
    con.execute(f"create or replace view {name} as {query}")


def refresh_views(con: Connection, zone: RawZone, contract: Contract) -> None:
    for entity in contract.entities:
        refresh_view(con, zone, contract, entity)


def remove_unlisted(con: Connection, zone: RawZone) -> list[Path]:
    """Delete the zone's files the manifest does not list (replaced versions, a killed run's files,
    staging), and empty folders. Called after a run commits, and before the next one starts."""
    if not zone.root.is_dir():
        return []
    listed = {zone.absolute(p) for p in listed_files(con)["path"].to_list()}
    removed = []
    for path in sorted(zone.root.rglob("*.parquet")):
        if path not in listed:
            path.unlink(missing_ok=True)
            removed.append(path)
    shutil.rmtree(zone.root / STAGING, ignore_errors=True)
    for folder in sorted((p for p in zone.root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(folder.iterdir()):
            folder.rmdir()
    return removed


def migrate_tables(con: Connection, zone: RawZone, contract: Contract, periods: dict[tuple[str, str], str]) -> None:
    """A warehouse written before the raw zone holds ``raw_<entity>`` as tables: their rows move to
    the zone, one file per agency and landing file (``periods``: (agency, sha256) -> period), and
    the tables become views. Runs in the caller's transaction."""
    q = warehouse.quote_identifier
    for entity in contract.entities:
        name = raw_table_name(entity)
        kind = warehouse.scalar(con, "select table_type from information_schema.tables where table_name = ?", [name])
        if kind != "BASE TABLE":
            continue
        present = warehouse.table_columns(con, name)
        columns = [c for c, _ in raw_table_columns(contract, entity) if c in present]
        for agency, sha in con.execute(f"select distinct _agency_folder, _source_sha256 from {q(name)}").fetchall():
            period = periods.get((agency, sha), "unknown")
            path = zone.new_file(entity, agency, period, sha)
            rows = warehouse.copy_to_parquet(
                con,
                f"select {', '.join(q(c) for c in columns)} from {q(name)} "
                f"where _agency_folder = $agency and _source_sha256 = $sha order by _source_row",
                path,
                {"agency": agency, "sha": sha},
            )
            list_file(con, zone, entity, agency, period, sha, path, rows, columns)
        refresh_view(con, zone, contract, entity)
