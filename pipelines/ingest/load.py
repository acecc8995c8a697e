"""Write what ingestion decided into the warehouse, all of a run in one transaction.

Tables:

* ``raw_<entity>``: accepted rows, contract columns plus lineage (``_agency_folder``,
  ``_source_file``, ``_source_sha256``, ``_source_row``);
* ``raw_quarantine``: every rejected row with its file's SHA-256, its line, a reason code,
  the column concerned and the raw line (withheld when it holds an identifier);
* ``raw_landing_files``: the ledger, one row per file and entity, with its status and
  counts; rows in = rows accepted + rows quarantined for every file.

* ``raw_held_<entity>``: rows quarantined as ``orphan_reference``, typed and pseudonymised,
  kept so that a later run releases them into ``raw_<entity>`` once their parent is accepted
  (``release_held_rows``); the ledger's counts follow.

Replacement rule: a file is identified by its SHA-256 (re-dropping the same content adds
nothing) and keyed by agency, entity and period (``..._YYYYMM_...`` in its name). A new
file with the key of a current one replaces it wholesale: the older file's rows leave the
raw, held and quarantine tables and its ledger row is marked ``superseded``. A file refused
whole (a file-level reason) replaces nothing: the earlier file stays.
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
from pipelines.ingest.reasons import RETRIED_REASONS, Reason
from pipelines.ingest.references import AGENCY, parents_first, references_of

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


def held_table_name(entity: str) -> str:
    return f"raw_held_{entity}"


def held_entities(contract: Contract) -> list[str]:
    """Entities whose rows can be held back: those with a reference to another entity."""
    return [e for e in contract.entities if references_of(e)]


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
    file_reason: Reason | None = None
    """Set when the whole file (or sheet) was refused: its rows, if any could be counted, are all
    quarantined with this reason, and it replaces no earlier file."""
    held: pl.DataFrame | None = None
    """Rows quarantined as orphans, typed and pseudonymised, kept to be released later."""
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
        self.reasons = {str(r): int(n) for r, n in counts}
        if self.file_reason is not None:
            self.reasons.setdefault(self.file_reason.value, 0)  # refused whole, even with no row to count
            self.status = "rejected"
        elif self.rows_quarantined == 0:
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
    wanted |= {held_table_name(e): raw_table_columns(contract, e) for e in held_entities(contract)}
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


def _retried(reasons: str) -> bool:
    return any(f'"{r.value}"' in reasons for r in RETRIED_REASONS)


def known_files(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Files already received; a file that failed for a reason worth retrying is not one of them."""
    if not warehouse.table_exists(con, LANDING_FILES_TABLE):
        return set()
    rows = con.execute(f"select sha256, reasons from {LANDING_FILES_TABLE}").fetchall()
    return {sha for sha, reasons in rows if not _retried(reasons or "")}


def stored_keys(con: duckdb.DuckDBPyConnection, entity: str, column: str, excluding: Sequence[str]) -> pl.DataFrame:
    """Distinct ``(_agency_folder, column)`` stored for an entity, except the rows of the given files."""
    name = raw_table_name(entity)
    if not warehouse.table_exists(con, name):
        return pl.DataFrame(schema={AGENCY: pl.String, column: pl.String})
    return warehouse.query(
        con,
        f"select distinct {AGENCY}, {warehouse.quote_identifier(column)} from {warehouse.quote_identifier(name)} "
        "where not list_contains($excluding, _source_sha256)",
        {"excluding": list(excluding)},
    )


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
            if not _retried(json.dumps(load.reasons)):
                # A file that failed before and is read now: its failed ledger rows are history.
                con.execute(
                    f"update {LANDING_FILES_TABLE} set status = 'superseded', superseded_by = ? "
                    "where sha256 = ? and status <> 'superseded' and reasons like ?",
                    [load.sha256, load.sha256, f'%"{Reason.PROCESSING_ERROR.value}"%'],
                )
            if load.entity is not None and load.status != "superseded" and load.file_reason is None:
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
            if load.held is not None and load.held.height and load.status != "superseded":
                columns = [c for c, _ in raw_table_columns(contract, load.entity or "")]
                held = load.held.with_columns(
                    pl.lit(load.agency_folder).alias("_agency_folder"),
                    pl.lit(load.relative_path).alias("_source_file"),
                    pl.lit(load.sha256).alias("_source_sha256"),
                )
                warehouse.insert_frame(con, held_table_name(load.entity or ""), held.select(columns))
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
            if load.entity is not None and load.file_reason is None:
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
        release_held_rows(con, contract)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def _retire(con: duckdb.DuckDBPyConnection, entity: str, sha: str, replaced_by: str) -> None:
    con.execute(f"delete from {warehouse.quote_identifier(raw_table_name(entity))} where _source_sha256 = ?", [sha])
    held = held_table_name(entity)
    if warehouse.table_exists(con, held):
        con.execute(f"delete from {warehouse.quote_identifier(held)} where _source_sha256 = ?", [sha])
    con.execute(f"delete from {QUARANTINE_TABLE} where _source_sha256 = ? and entity = ?", [sha, entity])
    con.execute(
        f"update {LANDING_FILES_TABLE} set status = 'superseded', superseded_by = ? where sha256 = ? and entity = ?",
        [replaced_by, sha, entity],
    )


def release_held_rows(con: duckdb.DuckDBPyConnection, contract: Contract) -> dict[str, int]:
    """Move held rows whose references now resolve into their raw table, parents first (a released
    episode releases its interventions in the same pass); the ledger and the quarantine follow.

    A released row whose key is already stored (or released twice) becomes a ``duplicate_key``
    instead. Returns the rows released per entity.
    """
    released: dict[str, int] = {}
    for entity in parents_first(held_entities(contract)):
        held, raw = held_table_name(entity), raw_table_name(entity)
        if not warehouse.table_exists(con, held) or not warehouse.table_exists(con, raw):
            continue
        q = warehouse.quote_identifier
        resolved = " and ".join(
            f"(h.{q(rule.column)} is null or exists (select 1 from {q(raw_table_name(rule.parent))} as p "
            f"where p._agency_folder = h._agency_folder and p.{q(rule.parent_column)} = h.{q(rule.column)}))"
            for rule in references_of(entity)
        )
        key = list(contract.entity(entity).primary_key)
        same_key = " and ".join(f"r.{q(k)} is not distinct from h.{q(k)}" for k in key)
        candidates = warehouse.query(
            con,
            f"select h.rowid as held_rowid, h._source_sha256, h._source_row, "
            f"row_number() over (partition by {', '.join(f'h.{q(k)}' for k in key)} "
            f"order by h._source_sha256, h._source_row) > 1 "
            f"or exists (select 1 from {q(raw)} as r where {same_key}) as taken "
            f"from {q(held)} as h where {resolved}",
        )
        if candidates.is_empty():
            continue
        columns = ", ".join(q(c) for c, _ in raw_table_columns(contract, entity))
        free = candidates.filter(~pl.col("taken"))["held_rowid"].to_list()
        con.execute(
            f"insert into {q(raw)} ({columns}) select {columns} from {q(held)} where list_contains($1, rowid)", [free]
        )
        con.execute(f"delete from {q(held)} where list_contains($1, rowid)", [candidates["held_rowid"].to_list()])
        _settle_quarantine(con, entity, candidates, ",".join(key))
        released[entity] = len(free)
    return released


def _settle_quarantine(con: duckdb.DuckDBPyConnection, entity: str, candidates: pl.DataFrame, key: str) -> None:
    """Released rows leave the quarantine; taken ones stay as ``duplicate_key``. The ledger follows."""
    orphan, duplicate = Reason.ORPHAN_REFERENCE.value, Reason.DUPLICATE_KEY.value
    for (sha, line, taken), group in candidates.group_by("_source_sha256", "_source_row", "taken"):
        rows = con.execute(
            f"select rowid from {QUARANTINE_TABLE} where _source_sha256 = ? and entity = ? and reason = ? "
            "and _source_row is not distinct from ? order by rowid limit ?",
            [sha, entity, orphan, line, group.height],
        ).fetchall()
        ids = [r[0] for r in rows]
        if taken:
            con.execute(
                f"update {QUARANTINE_TABLE} set reason = ?, column_name = ? where list_contains(?, rowid)",
                [duplicate, key, ids],
            )
        else:
            con.execute(f"delete from {QUARANTINE_TABLE} where list_contains(?, rowid)", [ids])
    per_file = candidates.group_by("_source_sha256").agg(
        (~pl.col("taken")).sum().alias("released"), pl.col("taken").sum().alias("taken")
    )
    for sha, freed, taken in per_file.iter_rows():
        rows = con.execute(
            f"select reasons, rows_accepted, rows_quarantined from {LANDING_FILES_TABLE} "
            "where sha256 = ? and entity = ? and status <> 'superseded'",
            [sha, entity],
        ).fetchall()
        if not rows:
            continue
        reasons = json.loads(rows[0][0] or "{}")
        reasons[orphan] = reasons.get(orphan, 0) - int(freed) - int(taken)
        reasons[duplicate] = reasons.get(duplicate, 0) + int(taken)
        reasons = {k: v for k, v in reasons.items() if v}
        accepted, quarantined = int(rows[0][1]) + int(freed), int(rows[0][2]) - int(freed)
        status = "accepted" if quarantined == 0 else "partial" if accepted else "rejected"
        con.execute(
            f"update {LANDING_FILES_TABLE} set rows_accepted = ?, rows_quarantined = ?, reasons = ?, status = ? "
            "where sha256 = ? and entity = ? and status <> 'superseded'",
            [accepted, quarantined, json.dumps(reasons, sort_keys=True), status, sha, entity],
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


def entities_lost(con: duckdb.DuckDBPyConnection, contract: Contract) -> pl.DataFrame:
    """Agencies that sent rows of an entity in their current files but have none stored: a file refused
    whole, or every row quarantined or held back (all of an agency's persons, say). One row per agency
    and entity, with rows received, and the reasons of their files (codes only)."""
    if not warehouse.table_exists(con, LANDING_FILES_TABLE):
        return pl.DataFrame()
    stored = " union all ".join(
        f"select _agency_folder as agency_folder, '{entity}' as entity, count(*) as stored "
        f"from {warehouse.quote_identifier(raw_table_name(entity))} group by _agency_folder"
        for entity in contract.entities
    )
    received = warehouse.query(
        con,
        f"""
        with stored as ({stored})
        select files.agency_folder, files.entity, sum(files.rows_in) as rows_in,
            string_agg(distinct files.reasons, chr(10)) as reasons
        from {LANDING_FILES_TABLE} as files
        left join stored on stored.agency_folder = files.agency_folder and stored.entity = files.entity
        where files.status <> 'superseded' and files.entity is not null and coalesce(stored.stored, 0) = 0
        group by files.agency_folder, files.entity
        having sum(files.rows_in) > 0
        order by files.agency_folder, files.entity
        """,
    )
    codes = (
        [
            ", ".join(sorted({code for part in text.splitlines() if part for code in json.loads(part)}))
            for text in received["reasons"].to_list()
        ]
        if received.height
        else []
    )
    return received.with_columns(pl.Series("reasons", codes, dtype=pl.String))


def stored_orphans(con: duckdb.DuckDBPyConnection, contract: Contract) -> dict[str, int]:
    """Stored rows whose reference no longer resolves (its parent's file was replaced without it),
    per ``entity.column``; only those with some."""
    counts: dict[str, int] = {}
    q = warehouse.quote_identifier
    for entity in contract.entities:
        for rule in references_of(entity):
            child, parent = raw_table_name(entity), raw_table_name(rule.parent)
            if not (warehouse.table_exists(con, child) and warehouse.table_exists(con, parent)):
                continue
            n = int(
                warehouse.scalar(
                    con,
                    f"select count(*) from {q(child)} as c where c.{q(rule.column)} is not null and not exists "
                    f"(select 1 from {q(parent)} as p where p._agency_folder = c._agency_folder "
                    f"and p.{q(rule.parent_column)} = c.{q(rule.column)})",
                )
                or 0
            )
            if n:
                counts[f"{entity}.{rule.column}"] = n
    return counts
