"""Load every landing file into the raw tables of the working database, in one transaction.

Walking-skeleton rule: a file that cannot be read or typed stops the load with a message
that names the file, the column, the line and the reason (never a value), and the warehouse
keeps what it had. Row-level quarantine replaces this rule in the ingestion issue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import polars as pl

from pipelines import warehouse
from pipelines.contract import Contract
from pipelines.ingest.coerce import coerce_to_contract
from pipelines.ingest.readers import SOURCE_ROW, LandingFile, ReadError, read_landing_file

LANDING_FILES_TABLE = "raw_landing_files"
LINEAGE_COLUMNS = (
    ("_agency_folder", "VARCHAR"),
    ("_source_file", "VARCHAR"),
    ("_source_sha256", "VARCHAR"),
    (SOURCE_ROW, "BIGINT"),
)


class IngestError(ValueError):
    pass


@dataclass(frozen=True)
class FileLoad:
    """One entity read from one file: how many rows came in and how many were stored."""

    relative_path: str
    agency_folder: str
    sha256: str
    format: str
    entity: str
    rows_in: int
    rows_loaded: int


def raw_table_name(entity: str) -> str:
    return f"raw_{entity}"


def raw_table_columns(contract: Contract, entity: str) -> list[tuple[str, str]]:
    fields = [(f.name, f.duckdb_type) for f in contract.entity(entity).fields]
    return fields + list(LINEAGE_COLUMNS)


def _typed_with_lineage(file: LandingFile, frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.lit(file.agency_folder).alias("_agency_folder"),
        pl.lit(file.relative_path).alias("_source_file"),
        pl.lit(file.sha256).alias("_source_sha256"),
    )


def read_and_type(
    files: list[LandingFile], contract: Contract, progress: Callable[[str], None] | None = None
) -> tuple[dict[str, list[pl.DataFrame]], list[FileLoad]]:
    """Read and type every file; raise one error listing every file that failed."""
    say = progress or (lambda _message: None)
    frames: dict[str, list[pl.DataFrame]] = {e: [] for e in contract.entities}
    loads: list[FileLoad] = []
    errors: list[str] = []
    for i, file in enumerate(files, start=1):
        say(f"[{i}/{len(files)}] reading {file.relative_path}")
        try:
            tables = read_landing_file(file, contract)
        except ReadError as exc:
            errors.append(str(exc))
            continue
        for table in tables:
            entity = contract.entity(table.entity)
            coerced = coerce_to_contract(table.frame, entity, table.decimal_comma)
            where = f"{file.relative_path} ({table.entity})"
            if coerced.missing_required:
                errors.append(f"{where}: required columns missing: {', '.join(coerced.missing_required)}")
                continue
            if coerced.unknown_columns:
                errors.append(f"{where}: columns not in the contract: {', '.join(coerced.unknown_columns)}")
                continue
            if coerced.problems:
                errors += [f"{where}: {p.describe(f.type)}" for f, p in coerced.problems]
                continue
            frames[table.entity].append(_typed_with_lineage(file, coerced.frame))
            loads.append(
                FileLoad(
                    file.relative_path,
                    file.agency_folder,
                    file.sha256,
                    file.format,
                    table.entity,
                    table.frame.height,
                    coerced.frame.height,
                )
            )
    if errors:
        listing = "\n".join(f"  - {e}" for e in errors)
        raise IngestError(f"{len(errors)} problem(s) in the landing files; nothing was loaded:\n{listing}")
    return frames, loads


def load_raw_tables(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    frames: dict[str, list[pl.DataFrame]],
    loads: list[FileLoad],
) -> dict[str, int]:
    """Replace every raw table at once: either all of them change or none does."""
    counts: dict[str, int] = {}
    con.execute("begin transaction")
    try:
        for entity in contract.entities:
            name = raw_table_name(entity)
            columns = raw_table_columns(contract, entity)
            warehouse.create_empty_table(con, name, columns)
            for frame in frames[entity]:
                warehouse.insert_frame(con, name, frame.select([c for c, _ in columns]))
            counts[name] = int(warehouse.scalar(con, f"select count(*) from {warehouse.quote_identifier(name)}"))
        warehouse.create_empty_table(
            con,
            LANDING_FILES_TABLE,
            [
                ("relative_path", "VARCHAR"),
                ("agency_folder", "VARCHAR"),
                ("sha256", "VARCHAR"),
                ("format", "VARCHAR"),
                ("entity", "VARCHAR"),
                ("rows_in", "BIGINT"),
                ("rows_loaded", "BIGINT"),
            ],
        )
        if loads:
            warehouse.insert_frame(con, LANDING_FILES_TABLE, pl.DataFrame([load.__dict__ for load in loads]))
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return counts


def unaccounted_rows(con: duckdb.DuckDBPyConnection, contract: Contract) -> pl.DataFrame:
    """Files whose rows in differ from the rows now in the raw tables (should be none)."""
    stored = " union all ".join(
        f"select _source_file, '{entity}' as entity, count(*) as stored "
        f"from {warehouse.quote_identifier(raw_table_name(entity))} group by _source_file"
        for entity in contract.entities
    )
    return warehouse.query(
        con,
        f"""
        with stored as ({stored})
        select files.relative_path, files.entity, files.rows_in, coalesce(stored.stored, 0) as rows_stored
        from {LANDING_FILES_TABLE} as files
        left join stored
            on stored._source_file = files.relative_path and stored.entity = files.entity
        where files.rows_in <> coalesce(stored.stored, 0)
        order by files.relative_path, files.entity
        """,
    )
