"""Write what ingestion decided into the warehouse, all of a run in one transaction.

Tables:

* ``raw_<entity>``: accepted rows, contract columns plus lineage (``_agency_folder``,
  ``_source_file``, ``_source_sha256``, ``_source_row``);
* ``raw_quarantine``: every rejected row with its file's SHA-256, its line, a reason code,
  the column concerned and the raw line (withheld when it holds an identifier);
* ``raw_landing_files``: the ledger, one row per file and entity, with its status and
  counts; rows in = rows accepted + rows quarantined for every file.

Replacement rule: a file is identified by its SHA-256 (re-dropping the same content adds
nothing) and keyed by agency, entity and period (``..._YYYYMM_...`` in its name). A new
file with the key of a current one replaces it wholesale: the older file's rows leave the
raw and quarantine tables and its ledger row is marked ``superseded``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import polars as pl

from pipelines import warehouse
from pipelines.contract import Contract

LANDING_FILES_TABLE = "raw_landing_files"
QUARANTINE_TABLE = "raw_quarantine"
LINEAGE_COLUMNS = (
    ("_agency_folder", "VARCHAR"),
    ("_source_file", "VARCHAR"),
    ("_source_sha256", "VARCHAR"),
    ("_source_row", "BIGINT"),
)
QUARANTINE_COLUMNS = (
    ("_source_sha256", "VARCHAR"),
    ("_source_file", "VARCHAR"),
    ("_agency_folder", "VARCHAR"),
    ("entity", "VARCHAR"),
    ("_source_row", "BIGINT"),
    ("reason", "VARCHAR"),
    ("column_name", "VARCHAR"),
    ("raw_line", "VARCHAR"),
)
LEDGER_COLUMNS = (
    ("sha256", "VARCHAR"),
    ("relative_path", "VARCHAR"),
    ("agency_folder", "VARCHAR"),
    ("entity", "VARCHAR"),
    ("period", "VARCHAR"),
    ("format", "VARCHAR"),
    ("status", "VARCHAR"),
    ("rows_in", "BIGINT"),
    ("rows_accepted", "BIGINT"),
    ("rows_quarantined", "BIGINT"),
    ("reasons", "VARCHAR"),
    ("message", "VARCHAR"),
    ("ingested_at", "TIMESTAMP"),
    ("superseded_by", "VARCHAR"),
)


def raw_table_name(entity: str) -> str:
    return f"raw_{entity}"


def raw_table_columns(contract: Contract, entity: str) -> list[tuple[str, str]]:
    return [(f.name, f.duckdb_type) for f in contract.entity(entity).fields] + list(LINEAGE_COLUMNS)


@dataclass
class EntityLoad:
    """What one file brings for one entity (or for no entity, when the file is unusable)."""

    sha256: str
    relative_path: str
    agency_folder: str
    entity: str | None
    period: str
    format: str
    rows_in: int
    accepted: pl.DataFrame | None
    quarantined: pl.DataFrame
    message: str
    reasons: dict[str, int] = field(default_factory=dict)
    status: str = ""

    @property
    def rows_accepted(self) -> int:
        return 0 if self.accepted is None else self.accepted.height

    @property
    def rows_quarantined(self) -> int:
        return self.quarantined.height

    def finish(self) -> None:
        counts = self.quarantined.group_by("reason").len().sort("reason").iter_rows()
        self.reasons = {**{str(r): int(n) for r, n in counts}, **{k: v for k, v in self.reasons.items() if v == 0}}
        file_problem = any(count == 0 for count in self.reasons.values())
        if self.rows_quarantined == 0 and not file_problem:
            self.status = "accepted"  # a header-only file is a valid "nothing this period"
        elif self.rows_accepted == 0:
            self.status = "rejected"
        else:
            self.status = "partial"


def empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(schema={name: _polars(kind) for name, kind in QUARANTINE_COLUMNS})


def _polars(kind: str) -> pl.DataType:
    return pl.Int64() if kind == "BIGINT" else pl.String()


def ensure_tables(con: duckdb.DuckDBPyConnection, contract: Contract) -> None:
    """Create missing tables, and add columns a newer contract brought."""
    wanted = {raw_table_name(e): raw_table_columns(contract, e) for e in contract.entities}
    wanted[QUARANTINE_TABLE] = list(QUARANTINE_COLUMNS)
    wanted[LANDING_FILES_TABLE] = list(LEDGER_COLUMNS)
    for name, columns in wanted.items():
        if not warehouse.table_exists(con, name):
            warehouse.create_empty_table(con, name, columns, replace=False)
            continue
        present = set(warehouse.table_columns(con, name))
        for column, kind in columns:
            if column not in present:
                warehouse.add_column(con, name, column, kind)


def known_files(con: duckdb.DuckDBPyConnection) -> set[str]:
    if not warehouse.table_exists(con, LANDING_FILES_TABLE):
        return set()
    return {row[0] for row in con.execute(f"select distinct sha256 from {LANDING_FILES_TABLE}").fetchall()}


def current_files(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Files whose rows are in the raw tables now (not superseded), one row per file and entity."""
    if not warehouse.table_exists(con, LANDING_FILES_TABLE):
        return pl.DataFrame(
            schema={"sha256": pl.String, "agency_folder": pl.String, "entity": pl.String, "period": pl.String}
        )
    return warehouse.query(
        con,
        f"select sha256, agency_folder, entity, period from {LANDING_FILES_TABLE} "
        "where status <> 'superseded' and entity is not null",
    )


def stored_rows(
    con: duckdb.DuckDBPyConnection, contract: Contract, entity: str, excluding: Sequence[str]
) -> pl.DataFrame:
    """Contract columns of the rows stored for an entity, except those of the given files."""
    name = raw_table_name(entity)
    if not warehouse.table_exists(con, name):
        return pl.DataFrame()
    columns = ", ".join(warehouse.quote_identifier(c) for c in contract.entity(entity).field_names)
    return warehouse.query(
        con,
        f"select {columns} from {warehouse.quote_identifier(name)} where not list_contains($excluding, _source_sha256)",
        {"excluding": list(excluding)},
    )


def write_loads(con: duckdb.DuckDBPyConnection, contract: Contract, loads: Sequence[EntityLoad]) -> None:
    """Apply every load of a run in one transaction: all of it lands, or none."""
    now = datetime.now(UTC).replace(tzinfo=None)
    con.execute("begin transaction")
    try:
        ensure_tables(con, contract)
        current = current_files(con)
        for load in loads:
            if load.entity is not None and load.status != "superseded":
                replaced = current.filter(
                    (pl.col("agency_folder") == load.agency_folder)
                    & (pl.col("entity") == load.entity)
                    & (pl.col("period") == load.period)
                    & (pl.col("sha256") != load.sha256)
                )["sha256"].to_list()
                for sha in replaced:
                    _retire(con, load.entity, sha, load.sha256)
            if load.accepted is not None and load.accepted.height and load.status != "superseded":
                name = raw_table_name(load.entity or "")
                columns = [c for c, _ in raw_table_columns(contract, load.entity or "")]
                warehouse.insert_frame(con, name, load.accepted.select(columns))
            if load.quarantined.height and load.status != "superseded":
                warehouse.insert_frame(con, QUARANTINE_TABLE, load.quarantined)
            ledger = pl.DataFrame(
                [
                    {
                        "sha256": load.sha256,
                        "relative_path": load.relative_path,
                        "agency_folder": load.agency_folder,
                        "entity": load.entity,
                        "period": load.period,
                        "format": load.format,
                        "status": load.status,
                        "rows_in": load.rows_in,
                        "rows_accepted": load.rows_accepted,
                        "rows_quarantined": load.rows_quarantined,
                        "reasons": json.dumps(load.reasons, sort_keys=True),
                        "message": load.message,
                        "ingested_at": now,
                        "superseded_by": None,
                    }
                ],
                schema={c: (pl.Datetime("us") if t == "TIMESTAMP" else _polars(t)) for c, t in LEDGER_COLUMNS},
            )
            warehouse.insert_frame(con, LANDING_FILES_TABLE, ledger)
            if load.entity is not None:
                current = pl.concat(
                    [
                        current,
                        pl.DataFrame(
                            {
                                "sha256": [load.sha256],
                                "agency_folder": [load.agency_folder],
                                "entity": [load.entity],
                                "period": [load.period],
                            }
                        ),
                    ],
                    how="vertical_relaxed",
                )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def _retire(con: duckdb.DuckDBPyConnection, entity: str, sha: str, replaced_by: str) -> None:
    con.execute(f"delete from {warehouse.quote_identifier(raw_table_name(entity))} where _source_sha256 = ?", [sha])
    con.execute(f"delete from {QUARANTINE_TABLE} where _source_sha256 = ? and entity = ?", [sha, entity])
    con.execute(
        f"update {LANDING_FILES_TABLE} set status = 'superseded', superseded_by = ? where sha256 = ? and entity = ?",
        [replaced_by, sha, entity],
    )


def unaccounted_rows(con: duckdb.DuckDBPyConnection, contract: Contract) -> pl.DataFrame:
    """Current files where rows in differ from rows accepted + quarantined, or from what is stored."""
    if not warehouse.table_exists(con, LANDING_FILES_TABLE):
        return pl.DataFrame()
    stored = " union all ".join(
        f"select _source_sha256 as sha256, '{entity}' as entity, count(*) as stored "
        f"from {warehouse.quote_identifier(raw_table_name(entity))} group by _source_sha256"
        for entity in contract.entities
    )
    return warehouse.query(
        con,
        f"""
        with stored as ({stored}),
        quarantined as (
            select _source_sha256 as sha256, entity, count(*) as quarantined
            from {QUARANTINE_TABLE} group by _source_sha256, entity
        )
        select files.relative_path, files.entity, files.rows_in, files.rows_accepted, files.rows_quarantined,
            coalesce(stored.stored, 0) as rows_stored, coalesce(quarantined.quarantined, 0) as rows_in_quarantine
        from {LANDING_FILES_TABLE} as files
        left join stored on stored.sha256 = files.sha256 and stored.entity = files.entity
        left join quarantined
            on quarantined.sha256 = files.sha256 and quarantined.entity is not distinct from files.entity
        where files.status <> 'superseded'
            and (files.rows_in <> files.rows_accepted + files.rows_quarantined
                or files.rows_accepted <> coalesce(stored.stored, 0)
                or files.rows_quarantined <> coalesce(quarantined.quarantined, 0))
        order by files.relative_path, files.entity
        """,
    )
