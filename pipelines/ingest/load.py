"""Write what ingestion decided, all of a run in one transaction.

Where things go:

* accepted rows: the raw zone (``raw_zone``), Parquet by entity, agency and period, read through
  the views ``raw_<entity>`` (contract columns plus lineage: ``_agency_folder``,
  ``_source_file``, ``_source_sha256``, ``_source_row``);
* ``raw_quarantine``: every rejected row with its file's agency and SHA-256, its line, a reason
  code, the column concerned and the raw line (withheld when it holds an identifier);
* ``raw_landing_files``: the ledger, one row per file and entity, with its status and counts;
  rows in = rows accepted + rows quarantined for every file;
* ``raw_held_<entity>``: rows quarantined as ``orphan_reference``, typed and pseudonymised, kept
  so that a later run releases them into the raw zone once their parent is accepted
  (``release_held_rows``); the ledger's counts follow.

A received file is known by its **agency folder and its SHA-256** (re-dropping the same content
in the same folder adds nothing; the same bytes in another agency's folder are another file) and
keyed by agency, entity and period (``..._YYYYMM_...`` in its name). A new file with the key of
a current one replaces it wholesale: the older file's partition, held and quarantined rows go
and its ledger row is marked ``superseded``. A file refused whole (a file-level reason) replaces
nothing: the earlier file stays.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from pipelines import warehouse
from pipelines.contract import Contract
from pipelines.ingest.raw_zone import (
    RawZone,
    ensure_manifest,
    list_file,
    listed_files,
    migrate_tables,
    raw_table_columns,
    raw_table_name,
    refresh_view,
    refresh_views,
    remove_unlisted,
    unlist_file,
)
from pipelines.ingest.reasons import RETRIED_REASONS, Reason
from pipelines.ingest.references import AGENCY, parents_first, references_of
from pipelines.warehouse import Connection

__all__ = ["raw_table_columns", "raw_table_name"]

LANDING_FILES_TABLE = "raw_landing_files"
QUARANTINE_TABLE = "raw_quarantine"
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
SETTLED_TABLE = "_settled_rows"
"""Temporary: rows of staged files that the checks across files quarantined (``settle``)."""


def held_table_name(entity: str) -> str:
    return f"raw_held_{entity}"


def held_entities(contract: Contract) -> list[str]:
    """Entities whose rows can be held back: those with a reference to another entity."""
    return [e for e in contract.entities if references_of(e)]


@dataclass
class EntityLoad:
    """What one file brings for one entity (or for no entity, when the file is unusable)."""

    index: int
    """Its place in the run (files by path, then tables in file order): earlier rows win duplicates."""
    sha256: str
    relative_path: str
    agency_folder: str
    entity: str | None
    period: str
    format: str
    rows_in: int
    message: str
    file_reason: Reason | None = None
    """Set when the whole file (or sheet) was refused: its rows, if any could be counted, are all
    quarantined with this reason, and it replaces no earlier file."""
    staged: Path | None = None
    """Parquet: the rows that passed the file's own checks, typed, re-keyed, with lineage."""
    staged_rows: int = 0
    quarantine: list[Path] = field(default_factory=list)
    """Parquet parts of the quarantined rows (``QUARANTINE_COLUMNS``)."""
    counts: dict[str, int] = field(default_factory=dict)
    """Quarantined rows per reason."""
    removed: int = 0
    """Rows of ``staged`` quarantined by the checks across files (duplicates, orphans)."""
    held: int = 0
    """Of those, the orphans held back."""
    reasons: dict[str, int] = field(default_factory=dict)
    status: str = ""

    @property
    def identity(self) -> tuple[str, str]:
        return (self.agency_folder, self.sha256)

    @property
    def rows_accepted(self) -> int:
        return self.staged_rows - self.removed

    @property
    def rows_quarantined(self) -> int:
        return sum(self.counts.values())

    def finish(self) -> None:
        self.reasons = {code: n for code, n in sorted(self.counts.items()) if n}
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


def ensure_tables(con: Connection, contract: Contract, zone: RawZone) -> None:
    """Create missing tables, add columns a newer contract brought, and move raw tables written before
    the raw zone into it."""
    wanted = {held_table_name(e): raw_table_columns(contract, e) for e in held_entities(contract)}
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
    ensure_manifest(con)
    periods = {
        (agency, sha): period
        for agency, sha, period in con.execute(
            f"select agency_folder, sha256, any_value(period) from {LANDING_FILES_TABLE} group by all"
        ).fetchall()
    }
    migrate_tables(con, zone, contract, periods)
    for entity in contract.entities:
        if not warehouse.table_exists(con, raw_table_name(entity)):
            refresh_view(con, zone, contract, entity)


def _retried(reasons: str) -> bool:
    return any(f'"{r.value}"' in reasons for r in RETRIED_REASONS)


def known_files(con: Connection) -> set[tuple[str, str]]:
    """Files already received, as (agency folder, SHA-256); a file that failed for a reason worth
    retrying is not one of them."""
    if not warehouse.table_exists(con, LANDING_FILES_TABLE):
        return set()
    rows = con.execute(f"select agency_folder, sha256, reasons from {LANDING_FILES_TABLE}").fetchall()
    return {(agency, sha) for agency, sha, reasons in rows if not _retried(reasons or "")}


def current_files(con: Connection) -> pl.DataFrame:
    """Files whose rows are in the raw zone now (not superseded), one row per file and entity."""
    if not warehouse.table_exists(con, LANDING_FILES_TABLE):
        return pl.DataFrame(
            schema={"sha256": pl.String, "agency_folder": pl.String, "entity": pl.String, "period": pl.String}
        )
    return warehouse.query(
        con,
        f"select sha256, agency_folder, entity, period from {LANDING_FILES_TABLE} "
        "where status <> 'superseded' and entity is not null",
    )


def _ledger_frame(load: EntityLoad, now: datetime) -> pl.DataFrame:
    return pl.DataFrame(
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


def write_loads(con: Connection, contract: Contract, loads: Sequence[EntityLoad], zone: RawZone) -> None:
    """Apply every load of a run in one transaction: all of it lands, or none. Files reach the raw zone
    under new names; only the manifest, changed in the transaction, makes them current."""
    now = datetime.now(UTC).replace(tzinfo=None)
    q = warehouse.quote_identifier
    con.execute("begin transaction")
    try:
        ensure_tables(con, contract, zone)
        current = current_files(con)
        for load in loads:
            live = load.status != "superseded"
            if not _retried(json.dumps(load.reasons)):
                # A file that failed before and is read now: its failed ledger rows are history.
                con.execute(
                    f"update {LANDING_FILES_TABLE} set status = 'superseded', superseded_by = ? "
                    "where agency_folder = ? and sha256 = ? and status <> 'superseded' and reasons like ?",
                    [load.sha256, load.agency_folder, load.sha256, f'%"{Reason.PROCESSING_ERROR.value}"%'],
                )
            if load.entity is not None and live and load.file_reason is None:
                replaced = current.filter(
                    (pl.col("agency_folder") == load.agency_folder)
                    & (pl.col("entity") == load.entity)
                    & (pl.col("period") == load.period)
                    & (pl.col("sha256") != load.sha256)
                )["sha256"].to_list()
                for sha in replaced:
                    _retire(con, load.entity, load.agency_folder, sha, load.sha256)
            if load.entity is not None and live and load.staged is not None and load.rows_accepted:
                _place(con, zone, contract, load)
            if load.entity is not None and live and load.held:
                columns = ", ".join(q(c) for c, _ in raw_table_columns(contract, load.entity))
                con.execute(
                    f"insert into {q(held_table_name(load.entity))} ({columns}) select {columns} "
                    f"from read_parquet({warehouse.parquet_list_sql([load.staged or Path()])}, file_row_number = true) "
                    f"where file_row_number in (select row from {SETTLED_TABLE} where load = ? and reason = ?)",
                    [load.index, Reason.ORPHAN_REFERENCE.value],
                )
            if live:
                for part in load.quarantine:
                    warehouse.insert_frame(con, QUARANTINE_TABLE, pl.read_parquet(part))
            warehouse.insert_frame(con, LANDING_FILES_TABLE, _ledger_frame(load, now))
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
        refresh_views(con, zone, contract)
        release_held_rows(con, contract, zone)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    remove_unlisted(con, zone)


def _place(con: Connection, zone: RawZone, contract: Contract, load: EntityLoad) -> None:
    """The load's accepted rows become its partition's file: the staged file itself when the checks
    across files took nothing from it, else a copy without the rows they quarantined."""
    assert load.entity is not None
    assert load.staged is not None
    target = zone.new_file(load.entity, load.agency_folder, load.period, load.sha256)
    columns = [c for c, _ in raw_table_columns(contract, load.entity)]
    if load.removed == 0:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(load.staged, target)
        rows = load.staged_rows
    else:
        q = warehouse.quote_identifier
        rows = warehouse.copy_to_parquet(
            con,
            f"select {', '.join(q(c) for c in columns)} from read_parquet("
            f"{warehouse.parquet_list_sql([load.staged])}, file_row_number = true) "
            f"where file_row_number not in (select row from {SETTLED_TABLE} where load = {int(load.index)}) "
            "order by file_row_number",
            target,
        )
    list_file(con, zone, load.entity, load.agency_folder, load.period, load.sha256, target, rows, columns)


def _retire(con: Connection, entity: str, agency: str, sha: str, replaced_by: str) -> None:
    unlist_file(con, entity, agency, sha)
    held = held_table_name(entity)
    if warehouse.table_exists(con, held):
        con.execute(
            f"delete from {warehouse.quote_identifier(held)} where _agency_folder = ? and _source_sha256 = ?",
            [agency, sha],
        )
    con.execute(
        f"delete from {QUARANTINE_TABLE} where _agency_folder = ? and _source_sha256 = ? and entity = ?",
        [agency, sha, entity],
    )
    con.execute(
        f"update {LANDING_FILES_TABLE} set status = 'superseded', superseded_by = ? "
        "where agency_folder = ? and sha256 = ? and entity = ?",
        [replaced_by, agency, sha, entity],
    )


def release_held_rows(con: Connection, contract: Contract, zone: RawZone) -> dict[str, int]:
    """Move held rows whose references now resolve into the raw zone, parents first (a released
    episode releases its interventions in the same pass); the ledger and the quarantine follow.

    A released row whose key is already stored (or released twice) becomes a ``duplicate_key``
    instead. Each file that gets rows back gets a new version of its partition's file. Returns the
    rows released per entity.
    """
    released: dict[str, int] = {}
    q = warehouse.quote_identifier
    for entity in parents_first(held_entities(contract)):
        held, raw = held_table_name(entity), raw_table_name(entity)
        if not warehouse.table_exists(con, held) or not warehouse.table_exists(con, raw):
            continue
        resolved = " and ".join(
            f"(h.{q(rule.column)} is null or exists (select 1 from {q(raw_table_name(rule.parent))} as p "
            f"where p._agency_folder = h._agency_folder and p.{q(rule.parent_column)} = h.{q(rule.column)}))"
            for rule in references_of(entity)
        )
        key = list(contract.entity(entity).primary_key)
        same_key = " and ".join(f"r.{q(k)} is not distinct from h.{q(k)}" for k in key)
        candidates = warehouse.query(
            con,
            f"select h.rowid as held_rowid, h._agency_folder, h._source_sha256, h._source_row, "
            f"row_number() over (partition by h._agency_folder, {', '.join(f'h.{q(k)}' for k in key)} "
            f"order by h._source_sha256, h._source_row) > 1 "
            f"or exists (select 1 from {q(raw)} as r "
            f"where r._agency_folder = h._agency_folder and {same_key}) as taken "
            f"from {q(held)} as h where {resolved}",
        )
        if candidates.is_empty():
            continue
        columns = [c for c, _ in raw_table_columns(contract, entity)]
        free = candidates.filter(~pl.col("taken"))
        listed = listed_files(con, entity)
        periods = {
            (a, s): p
            for a, s, p in con.execute(
                f"select agency_folder, sha256, period from {LANDING_FILES_TABLE} "
                "where entity = ? and status <> 'superseded'",
                [entity],
            ).fetchall()
        }
        for (agency, sha), group in free.group_by("_agency_folder", "_source_sha256"):
            existing = listed.filter((pl.col("agency_folder") == agency) & (pl.col("sha256") == sha))
            period = existing["period"][0] if existing.height else periods.get((str(agency), str(sha)), "unknown")
            target = zone.new_file(entity, str(agency), str(period), str(sha))
            select = ", ".join(q(c) for c in columns)
            earlier = (
                f"select {select} from "
                f"read_parquet({warehouse.parquet_list_sql([zone.absolute(existing['path'][0])])}) "
                "union all "
                if existing.height
                else ""
            )
            rows = warehouse.copy_to_parquet(
                con,
                f"select * from ({earlier}select {select} from {q(held)} where list_contains($ids, rowid)) "
                "order by _source_row",
                target,
                {"ids": group["held_rowid"].to_list()},
            )
            list_file(con, zone, entity, str(agency), str(period), str(sha), target, rows, columns)
        con.execute(f"delete from {q(held)} where list_contains($1, rowid)", [candidates["held_rowid"].to_list()])
        refresh_view(con, zone, contract, entity)
        _settle_quarantine(con, entity, candidates, ",".join(key))
        released[entity] = free.height
    return released


def _settle_quarantine(con: Connection, entity: str, candidates: pl.DataFrame, key: str) -> None:
    """Released rows leave the quarantine; taken ones stay as ``duplicate_key``. The ledger follows."""
    orphan, duplicate = Reason.ORPHAN_REFERENCE.value, Reason.DUPLICATE_KEY.value
    for (agency, sha, line, taken), group in candidates.group_by(
        "_agency_folder", "_source_sha256", "_source_row", "taken"
    ):
        rows = con.execute(
            f"select rowid from {QUARANTINE_TABLE} where _agency_folder = ? and _source_sha256 = ? and entity = ? "
            "and reason = ? and _source_row is not distinct from ? order by rowid limit ?",
            [agency, sha, entity, orphan, line, group.height],
        ).fetchall()
        ids = [r[0] for r in rows]
        if taken:
            con.execute(
                f"update {QUARANTINE_TABLE} set reason = ?, column_name = ? where list_contains(?, rowid)",
                [duplicate, key, ids],
            )
        else:
            con.execute(f"delete from {QUARANTINE_TABLE} where list_contains(?, rowid)", [ids])
    per_file = candidates.group_by("_agency_folder", "_source_sha256").agg(
        (~pl.col("taken")).sum().alias("released"), pl.col("taken").sum().alias("taken")
    )
    for agency, sha, freed, taken in per_file.iter_rows():
        rows = con.execute(
            f"select reasons, rows_accepted, rows_quarantined from {LANDING_FILES_TABLE} "
            "where agency_folder = ? and sha256 = ? and entity = ? and status <> 'superseded'",
            [agency, sha, entity],
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
            "where agency_folder = ? and sha256 = ? and entity = ? and status <> 'superseded'",
            [accepted, quarantined, json.dumps(reasons, sort_keys=True), status, agency, sha, entity],
        )


def unaccounted_rows(con: Connection, contract: Contract) -> pl.DataFrame:
    """Current files where rows in differ from rows accepted + quarantined, or from what is stored."""
    if not warehouse.table_exists(con, LANDING_FILES_TABLE):
        return pl.DataFrame()
    stored = " union all ".join(
        f"select _agency_folder as agency_folder, _source_sha256 as sha256, '{entity}' as entity, count(*) as stored "
        f"from {warehouse.quote_identifier(raw_table_name(entity))} group by _agency_folder, _source_sha256"
        for entity in contract.entities
    )
    return warehouse.query(
        con,
        f"""
        with stored as ({stored}),
        quarantined as (
            select _agency_folder as agency_folder, _source_sha256 as sha256, entity, count(*) as quarantined
            from {QUARANTINE_TABLE} group by _agency_folder, _source_sha256, entity
        )
        select files.relative_path, files.entity, files.rows_in, files.rows_accepted, files.rows_quarantined,
            coalesce(stored.stored, 0) as rows_stored, coalesce(quarantined.quarantined, 0) as rows_in_quarantine
        from {LANDING_FILES_TABLE} as files
        left join stored on stored.agency_folder = files.agency_folder and stored.sha256 = files.sha256
            and stored.entity = files.entity
        left join quarantined on quarantined.agency_folder = files.agency_folder
            and quarantined.sha256 = files.sha256 and quarantined.entity is not distinct from files.entity
        where files.status <> 'superseded'
            and (files.rows_in <> files.rows_accepted + files.rows_quarantined
                or files.rows_accepted <> coalesce(stored.stored, 0)
                or files.rows_quarantined <> coalesce(quarantined.quarantined, 0))
        order by files.relative_path, files.entity
        """,
    )


def entities_lost(con: Connection, contract: Contract) -> pl.DataFrame:
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


def stored_orphans(con: Connection, contract: Contract) -> dict[str, int]:
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
                    f"(select 1 from {q(parent)} as p where p.{AGENCY} = c.{AGENCY} "
                    f"and p.{q(rule.parent_column)} = c.{q(rule.column)})",
                )
                or 0
            )
            if n:
                counts[f"{entity}.{rule.column}"] = n
    return counts
