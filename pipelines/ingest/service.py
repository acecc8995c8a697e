"""Ingest landing files: read, check, pseudonymise, quarantine, and load, file by file.

``ingest_files`` is what the Dagster asset and ``parcours ingest`` call. It never raises
because of a bad file: any error while reading or checking one file becomes that file's
report (``rejected``, a reason code, a message naming the file and never a value), and each
file gets a report saying what happened to every one of its rows. Only problems with the
warehouse or the key stop it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from pipelines import warehouse
from pipelines.contract import Contract
from pipelines.ingest.config import AgenciesConfig, options_for
from pipelines.ingest.load import (
    EntityLoad,
    current_files,
    empty_quarantine,
    known_files,
    raw_table_name,
    stored_keys,
    write_loads,
)
from pipelines.ingest.privacy import identifier_hits, name_holds_identifier
from pipelines.ingest.pseudonyms import rekey
from pipelines.ingest.readers import SOURCE_ROW, FileProblem, LandingFile, ReadTable, read_landing_file
from pipelines.ingest.reasons import PRIVACY_REASONS, Reason
from pipelines.ingest.references import AGENCY, REFERENCES, first_orphan_column, parents_first, references_of
from pipelines.ingest.validate import REASON, REASON_COLUMN, validate_table

Progress = Callable[[str], None]
MAX_QUOTED_LINE = 8192
"""A raw line longer than this is not kept in quarantine (too long to scan and to show)."""


@dataclass(frozen=True)
class FileReport:
    """What happened to one file: the object ``parcours ingest --json`` prints."""

    file: str
    sha256: str
    status: str
    rows_in: int
    rows_accepted: int
    rows_quarantined: int
    reasons: dict[str, int]
    message: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _quarantine_rows(
    file: LandingFile, entity: str | None, lines: pl.DataFrame, table: ReadTable | None
) -> pl.DataFrame:
    """Quarantine rows for ``lines`` (``_source_row``, ``_reason``, ``_reason_column``) with their raw lines.

    A raw line is withheld when the row was rejected for holding an identifier, or when the
    line itself shows one (a phone number in a column the contract does not know, say).
    """
    if lines.is_empty():
        return empty_quarantine()
    wanted = [int(n) for n in lines[SOURCE_ROW].drop_nulls().to_list()]
    raw = table.raw_lines(wanted) if table is not None and table.raw_lines is not None else {}
    frame = lines.with_columns(
        pl.col(SOURCE_ROW).replace_strict(raw, default=None, return_dtype=pl.String).alias("raw_line"),
        # A column whose name holds an identifier (an e-mail as a header) is not named.
        pl.col(REASON_COLUMN).map_elements(
            lambda name: None if name_holds_identifier(name) else name, return_dtype=pl.String
        ),
    )
    too_long = pl.col("raw_line").str.len_bytes() > MAX_QUOTED_LINE
    frame = frame.with_columns(pl.when(too_long).then(None).otherwise(pl.col("raw_line")).alias("raw_line"))
    hit, _ = identifier_hits(frame, [], ["raw_line"])
    privacy = pl.col(REASON).is_in([r.value for r in PRIVACY_REASONS])
    return frame.with_columns(hit.alias("_hit")).select(
        pl.lit(file.sha256).alias("_source_sha256"),
        pl.lit(file.relative_path).alias("_source_file"),
        pl.lit(file.agency_folder).alias("_agency_folder"),
        pl.lit(entity, dtype=pl.String).alias("entity"),
        pl.col(SOURCE_ROW).cast(pl.Int64),
        pl.col(REASON).alias("reason"),
        pl.col(REASON_COLUMN).alias("column_name"),
        pl.when(privacy | pl.col("_hit")).then(None).otherwise(pl.col("raw_line")).alias("raw_line"),
    )


def _whole_table(table: ReadTable, reason: Reason, column: str | None = None) -> pl.DataFrame:
    return table.frame.select(
        pl.col(SOURCE_ROW), pl.lit(reason.value).alias(REASON), pl.lit(column, dtype=pl.String).alias(REASON_COLUMN)
    )


def _parse_rejects(table: ReadTable) -> pl.DataFrame:
    return pl.DataFrame(
        {
            SOURCE_ROW: [r.line for r in table.rejects],
            REASON: [r.reason.value for r in table.rejects],
            REASON_COLUMN: [r.column for r in table.rejects],
        },
        schema={SOURCE_ROW: pl.Int64, REASON: pl.String, REASON_COLUMN: pl.String},
    )


LINKAGE_SCOPE = "/federation"
"""Stands for the agency in a linkage pseudonym's HMAC message: no agency folder can be named so."""


def _pseudonymise(
    frame: pl.DataFrame, contract: Contract, entity: str, agency: str, key: bytes, cache: dict[str, str] | None
) -> pl.DataFrame:
    fields = [f for f in contract.entity(entity).fields if f.pseudonym and f.name in frame.columns]
    # A linkage pseudonym is re-keyed without the agency, so the same person links across agencies.
    return frame.with_columns(
        rekey(frame[f.name], LINKAGE_SCOPE, key) if f.linkage else rekey(frame[f.name], agency, key, cache)
        for f in fields
    )


def _entity_load(
    file: LandingFile,
    table: ReadTable | None,
    entity: str | None,
    accepted: pl.DataFrame | None,
    quarantined: pl.DataFrame,
    message: str,
    file_reason: Reason | None = None,
) -> EntityLoad:
    """What one table of a file brings; ``table`` is None when the file could not be read."""
    return EntityLoad(
        sha256=file.sha256,
        relative_path=file.relative_path,
        agency_folder=file.agency_folder,
        entity=entity,
        period=file.period,
        format=file.format,
        rows_in=table.rows_in if table is not None else 0,
        accepted=accepted,
        quarantined=quarantined,
        message=message,
        file_reason=file_reason,
    )


def prepare_table(
    file: LandingFile,
    table: ReadTable,
    contract: Contract,
    key: bytes,
    today: date,
    pseudonyms: dict[str, str] | None = None,
) -> EntityLoad:
    """Decide the fate of every row of one table, without touching the warehouse.

    ``pseudonyms``: this agency's identifiers already re-keyed in this run (filled in here).
    """
    parsed = _parse_rejects(table)
    where = file.relative_path if table.name == file.path.name else f"{file.relative_path} [{table.name}]"
    if table.identifier_in_name:
        message = (
            f"{where}: the sheet's name holds a direct identifier (it is shown by its position); the sheet was "
            "not read: name it after its entity and send the file again"
        )
        return _entity_load(file, table, None, None, empty_quarantine(), message, Reason.IDENTIFIER_IN_NAME)
    if table.entity is None:
        rejected = pl.concat([parsed, _whole_table(table, Reason.UNKNOWN_ENTITY)])
        message = (
            f"{where}: cannot tell which entity this holds; name the file <anything>_<entity>"
            f"{file.path.suffix} (or the sheet <entity>), with an entity among {sorted(contract.entities)}"
        )
        quarantined = _quarantine_rows(file, None, rejected, table)
        return _entity_load(file, table, None, None, quarantined, message, Reason.UNKNOWN_ENTITY)
    entity = contract.entity(table.entity)
    try:
        validated = validate_table(table.frame, entity, table.decimal_comma, file.agency_folder, today)
    except FileProblem as problem:
        rejected = pl.concat([parsed, _whole_table(table, problem.reason)])
        quarantined = _quarantine_rows(file, table.entity, rejected, table)
        message = f"{where}: {problem}; an earlier file for the same period, if any, is kept"
        return _entity_load(file, table, table.entity, None, quarantined, message, problem.reason)
    accepted = _pseudonymise(
        validated.accepted, contract, table.entity, file.agency_folder, key, pseudonyms
    ).with_columns(
        pl.lit(file.agency_folder).alias("_agency_folder"),
        pl.lit(file.relative_path).alias("_source_file"),
        pl.lit(file.sha256).alias("_source_sha256"),
    )
    rejected = pl.concat([parsed, validated.rejected])
    notes = []
    if validated.ignored_columns:
        notes.append(f"columns not in the contract, not stored: {', '.join(validated.ignored_columns)}")
    if not table.line_numbers_exact:
        notes.append("line numbers unavailable for accepted rows (the file has multi-line fields)")
    quarantined = _quarantine_rows(file, table.entity, rejected, table)
    message = f"{where}: " + ("; ".join(notes) if notes else "read")
    return _entity_load(file, table, table.entity, accepted, quarantined, message)


def prepare_file(
    file: LandingFile,
    contract: Contract,
    key: bytes,
    today: date,
    config: AgenciesConfig,
    pseudonyms: dict[str, str] | None = None,
) -> tuple[list[EntityLoad], dict[str, ReadTable]]:
    """Every table of one file, decided; any error becomes the file's own report (never the batch's end)."""
    try:
        read = read_landing_file(file, contract, options_for(file.agency_folder, config))
        loads = [prepare_table(file, table, contract, key, today, pseudonyms) for table in read.tables]
    except FileProblem as problem:
        return [_entity_load(file, None, None, None, empty_quarantine(), str(problem), problem.reason)], {}
    except Exception as exc:  # a bug or a resource limit on this file: report it, keep the batch going
        return [failed_load(file, exc)], {}
    # Kept only to quote raw lines of rows found duplicated later: the text frame itself can go
    # (a CSV's lines are read back from the file by offset), which halves peak memory.
    tables = {
        table.entity: replace(table, frame=table.frame.clear()) for table in read.tables if table.entity is not None
    }
    return loads, tables


def failed_load(file: LandingFile, exc: BaseException) -> EntityLoad:
    """A file whose reading or checking raised: no row taken, tried again at the next run.
    The message names the error's type only: an exception's text may quote a value."""
    message = (
        f"{file.relative_path}: reading or checking the file failed ({type(exc).__name__}); nothing was taken "
        "from it and it will be tried again at the next run"
    )
    return _entity_load(file, None, None, None, empty_quarantine(), message, Reason.PROCESSING_ERROR)


def _duplicates_of(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    load: EntityLoad,
    pending: list[pl.DataFrame],
    excluding: list[str],
) -> pl.DataFrame:
    """Rows of ``load`` whose key was already received: ``_source_row`` and whether the row is identical."""
    assert load.accepted is not None
    assert load.entity is not None
    entity = contract.entity(load.entity)
    key = list(entity.primary_key)
    values = entity.field_names
    incoming = load.accepted.select(SOURCE_ROW, *values).with_row_index("_position")
    found: list[pl.DataFrame] = []
    name = raw_table_name(load.entity)
    if warehouse.table_exists(con, name):
        found.append(warehouse.duplicates_in_table(con, name, incoming, key, values, excluding))
    for earlier in pending:
        joined = incoming.join(earlier.select(values), on=key, how="inner", nulls_equal=True, suffix="_seen")
        if joined.height:
            same = (
                pl.all_horizontal(pl.col(c).eq_missing(pl.col(f"{c}_seen")) for c in values if c not in key)
                if len(values) > len(key)
                else pl.lit(True)
            )
            found.append(joined.select("_position", same.alias("identical")))
    if not found:
        return pl.DataFrame(schema={"_position": pl.UInt32, "identical": pl.Boolean})
    return pl.concat(found).group_by("_position").agg(pl.col("identical").any()).sort("_position")


def ingest_files(
    con: duckdb.DuckDBPyConnection,
    files: Sequence[LandingFile],
    contract: Contract,
    key: bytes,
    today: date,
    config: AgenciesConfig | None = None,
    progress: Progress | None = None,
) -> list[FileReport]:
    """Ingest ``files`` into the warehouse behind ``con``; one report per file, in the given order."""
    say = progress or (lambda _message: None)
    config = config or AgenciesConfig()
    already = known_files(con)
    reports: dict[int, FileReport] = {}  # by position: two paths may share a relative path
    loads: list[EntityLoad] = []
    tables: dict[tuple[str, str], ReadTable] = {}
    seen_now: set[str] = set()
    order = sorted(files, key=lambda f: f.relative_path)
    pseudonyms: dict[str, dict[str, str]] = {}
    for i, file in enumerate(order, start=1):
        if file.sha256 in already or file.sha256 in seen_now:
            reports[i] = FileReport(
                file.relative_path,
                file.sha256,
                "duplicate",
                0,
                0,
                0,
                {},
                f"{file.relative_path}: same content as a file already received; nothing added",
            )
            continue
        seen_now.add(file.sha256)
        say(f"[{i}/{len(order)}] checking {file.relative_path}")
        if file.agency_folder not in pseudonyms:  # files come agency by agency: keep one agency's cache
            pseudonyms = {file.agency_folder: {}}
        file_loads, file_tables = prepare_file(file, contract, key, today, config, pseudonyms[file.agency_folder])
        loads += file_loads
        tables.update({(file.sha256, entity): table for entity, table in file_tables.items()})

    by_sha = {f.sha256: f for f in order}
    _choose_winners(loads)
    current = current_files(con)
    replaced = _replaced_files(loads, current)
    pending: dict[str, list[pl.DataFrame]] = {}
    for index, load in enumerate(loads):
        if load.status == "superseded" or load.entity is None or load.accepted is None or not load.accepted.height:
            continue
        try:
            _move_duplicates(con, contract, load, pending, replaced, by_sha[load.sha256], tables)
        except Exception as exc:  # this file's checks against what is stored failed: the file alone is refused
            loads[index] = failed_load(by_sha[load.sha256], exc)
            continue
        pending.setdefault(load.entity, []).append(load.accepted)
    _hold_orphans(con, loads, replaced, by_sha, tables)
    for load in loads:
        if load.status != "superseded":
            load.finish()
    write_loads(con, contract, loads)

    for i, file in enumerate(order, start=1):
        if i not in reports:
            reports[i] = _file_report(file, [load for load in loads if load.sha256 == file.sha256])
    return [reports[i] for i in range(1, len(order) + 1)]


def _choose_winners(loads: list[EntityLoad]) -> None:
    """Within a run, the last file (by path) for an agency, entity and period wins; a file refused
    whole (a file reason) never replaces another one, and is never superseded by one."""
    winner: dict[tuple[str, str, str], str] = {}
    for load in loads:
        if load.entity is not None and load.file_reason is None:
            winner[(load.agency_folder, load.entity, load.period)] = load.sha256
    for load in loads:
        if load.entity is None or load.file_reason is not None:
            continue
        if winner[(load.agency_folder, load.entity, load.period)] != load.sha256:
            load.status = "superseded"
            load.message += "; replaced by a later file for the same agency, entity and period in this run"


def _replaced_files(loads: list[EntityLoad], current: pl.DataFrame) -> dict[str, set[str]]:
    """Per entity, the stored files this run's files replace (their rows no longer count)."""
    replaced: dict[str, set[str]] = {}
    for load in loads:
        if load.entity is None or load.file_reason is not None or load.status == "superseded":
            continue
        same_key = current.filter(
            (pl.col("agency_folder") == load.agency_folder)
            & (pl.col("entity") == load.entity)
            & (pl.col("period") == load.period)
            & (pl.col("sha256") != load.sha256)
        )["sha256"].to_list()
        replaced.setdefault(load.entity, set()).update(same_key)
    return replaced


def _move_duplicates(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    load: EntityLoad,
    pending: dict[str, list[pl.DataFrame]],
    replaced: dict[str, set[str]],
    file: LandingFile,
    tables: dict[tuple[str, str], ReadTable],
) -> None:
    """Quarantine the rows of ``load`` already received (stored, or accepted earlier in this run)."""
    assert load.entity is not None
    assert load.accepted is not None
    excluding = sorted(replaced.get(load.entity, set()))
    duplicates = _duplicates_of(con, contract, load, pending.get(load.entity, []), excluding)
    if not duplicates.height:
        return
    accepted = load.accepted.with_row_index("_position")
    moved = accepted.join(duplicates, on="_position").select(
        SOURCE_ROW,
        pl.when(pl.col("identical"))
        .then(pl.lit(Reason.DUPLICATE_ROW.value))
        .otherwise(pl.lit(Reason.DUPLICATE_KEY.value))
        .alias(REASON),
        pl.lit(",".join(contract.entity(load.entity).primary_key)).alias(REASON_COLUMN),
    )
    table = tables.get((load.sha256, load.entity))
    load.quarantined = pl.concat([load.quarantined, _quarantine_rows(file, load.entity, moved, table)])
    load.accepted = accepted.join(duplicates, on="_position", how="anti").drop("_position")


def _hold_orphans(
    con: duckdb.DuckDBPyConnection,
    loads: list[EntityLoad],
    replaced: dict[str, set[str]],
    by_sha: dict[str, LandingFile],
    tables: dict[tuple[str, str], ReadTable],
) -> None:
    """Hold back accepted rows whose references point nowhere, parents first, so that a row held in
    this run is no parent for its own children."""
    live = [
        load for load in loads if load.status != "superseded" and load.entity is not None and load.accepted is not None
    ]
    parents: dict[tuple[str, str], list[pl.DataFrame]] = {}
    for rule in REFERENCES:
        if (rule.parent, rule.parent_column) not in parents:
            excluding = sorted(replaced.get(rule.parent, set()))
            parents[(rule.parent, rule.parent_column)] = [stored_keys(con, rule.parent, rule.parent_column, excluding)]
    for entity in parents_first({load.entity for load in live if load.entity is not None}):
        for load in (item for item in live if item.entity == entity):
            assert load.accepted is not None
            if references_of(entity) and load.accepted.height:
                keys = {name: pl.concat(frames, how="vertical_relaxed") for name, frames in parents.items()}
                _hold(load, keys, by_sha[load.sha256], tables.get((load.sha256, entity)))
            for (parent, column), frames in parents.items():
                if parent == entity and column in load.accepted.columns:
                    frames.append(load.accepted.select(pl.lit(load.agency_folder).alias(AGENCY), pl.col(column)))


def _hold(
    load: EntityLoad, parent_keys: dict[tuple[str, str], pl.DataFrame], file: LandingFile, table: ReadTable | None
) -> None:
    assert load.accepted is not None
    assert load.entity is not None
    rows = load.accepted.with_columns(pl.lit(load.agency_folder).alias(AGENCY))
    orphan = first_orphan_column(rows, load.entity, parent_keys)
    if not orphan.is_not_null().any():
        return
    held = load.accepted.filter(orphan.is_not_null())
    moved = held.select(SOURCE_ROW).with_columns(
        pl.lit(Reason.ORPHAN_REFERENCE.value).alias(REASON), orphan.filter(orphan.is_not_null()).alias(REASON_COLUMN)
    )
    load.held = held
    load.quarantined = pl.concat([load.quarantined, _quarantine_rows(file, load.entity, moved, table)])
    load.accepted = load.accepted.filter(orphan.is_null())
    note = (
        f"rows held back: {held.height:,} (they point to a person, episode or care manager not received from "
        "this agency; released automatically when it arrives)"
    )
    load.message = f"{load.message.removesuffix(': read')}{': ' if load.message.endswith(': read') else '; '}{note}"


def _file_report(file: LandingFile, loads: list[EntityLoad]) -> FileReport:
    live = [load for load in loads if load.status != "superseded"]
    if not live:
        return FileReport(
            file.relative_path, file.sha256, "superseded", 0, 0, 0, {}, "; ".join(load.message for load in loads)
        )
    reasons: dict[str, int] = {}
    for load in live:
        for code, count in load.reasons.items():
            reasons[code] = reasons.get(code, 0) + count
    rows_in = sum(load.rows_in for load in live)
    accepted = sum(load.rows_accepted for load in live)
    quarantined = sum(load.rows_quarantined for load in live)
    if not quarantined and all(load.status == "accepted" for load in live):
        status = "accepted"
    elif accepted:
        status = "partial"
    else:
        status = "rejected"
    summary = f"{file.relative_path}: {accepted:,} of {rows_in:,} rows accepted"
    if quarantined:
        top = ", ".join(f"{code} ({count:,})" for code, count in sorted(reasons.items(), key=lambda kv: -kv[1]))
        summary += f"; {quarantined:,} quarantined: {top}"
    messages = [
        load.message.split(": ", 1)[1] if load.message.startswith(file.relative_path + ": ") else load.message
        for load in live
        if not load.message.endswith(": read")
    ]
    message = "; ".join([summary, *messages]) if messages else summary
    return FileReport(file.relative_path, file.sha256, status, rows_in, accepted, quarantined, reasons, message)


def resolve_paths(paths: Sequence[Path]) -> list[LandingFile]:
    """Files named on the command line: a file's agency is its folder's name; a folder holds
    agency folders, or is itself an agency's folder."""
    from pipelines.ingest.readers import describe_file, discover_landing_files

    found: list[LandingFile] = []
    # Absolute but not resolved: a link named on the command line is reported, never followed.
    # (Path.resolve would follow links; Path.absolute keeps "..", so normpath.)
    for path in dict.fromkeys(Path(os.path.normpath(p.absolute())) for p in paths):  # a path named twice: one file
        if path.is_symlink() or (path.exists() and not path.is_dir() and not path.is_file()) or path.is_file():
            described = describe_file(path, path.parent.parent)
            if described is not None:
                found.append(described)
        elif path.is_dir():
            if any(p.is_dir() for p in path.iterdir()):
                found += discover_landing_files(path)
            else:
                found += [
                    d
                    for p in sorted(path.iterdir())
                    if p.is_file()
                    if (d := describe_file(p, path.parent, path.name)) is not None
                ]
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return found
