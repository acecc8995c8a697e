"""Ingest landing files: read, check, pseudonymise, quarantine, and load, file by file.

``ingest_files`` is what the Dagster asset and ``parcours ingest`` call. It never raises
because of a bad file: any error while reading or checking one file becomes that file's
report (``rejected``, a reason code, a message naming the file and never a value), and each
file gets a report saying what happened to every one of its rows. Only problems with the
warehouse or the key stop it.

Two passes, both in the engine:

1. **Each file alone** (``prepare_file``), in its own connection to an in-memory engine apart from
   the warehouse (one engine for the run, so that a file costs no engine's start): read once, typed and
   checked by one generated query (``validate``), re-keyed (a keyed hash per distinct
   identifier, joined back), its accepted rows staged as Parquet and its quarantined rows with
   their raw lines. Nothing of a file stays in memory once it is staged. Files are checked side by side
   (``PARCOURS_INGEST_THREADS``, one per core): each file's decisions are its own, so the run is the
   same whatever their number (but for a file that failed with a processing error beside others: it is
   checked again alone in the same run, where one file at a time leaves it to the next run).
2. **Across files** (``settle``), set-based over the staged files and what is stored:
   duplicates of rows already stored (files about to be replaced excepted) or received earlier
   in the run, and references that resolve to nothing (anti-joins, parents first). Then
   ``load.write_loads`` writes the run in one transaction.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from pipelines import warehouse
from pipelines.contract import Contract, Entity
from pipelines.cores import configured_threads
from pipelines.ingest.config import AgenciesConfig, ReadOptions, options_for
from pipelines.ingest.load import (
    SETTLED_TABLE,
    EntityLoad,
    current_files,
    empty_quarantine,
    known_files,
    raw_table_name,
    write_loads,
)
from pipelines.ingest.privacy import identifier_hits, name_holds_identifier
from pipelines.ingest.pseudonyms import keyed_hash_parameters, keyed_hash_sql
from pipelines.ingest.raw_zone import RawZone, listed_files, remove_unlisted
from pipelines.ingest.readers import (
    LIBRARY_FAILURES,
    SOURCE_ROW,
    FileProblem,
    LandingFile,
    ReadTable,
    detect_encoding,
    line_reader,
    read_landing_file,
)
from pipelines.ingest.reasons import PRIVACY_REASONS, Reason
from pipelines.ingest.references import AGENCY, Reference, parents_first, references_of
from pipelines.ingest.source import POSITION
from pipelines.ingest.validate import REASON, REASON_COLUMN, validate_table
from pipelines.warehouse import Connection

Progress = Callable[[str], None]
MAX_QUOTED_LINE = 8192
"""A raw line longer than this is not kept in quarantine (too long to scan and to show)."""
SCRATCH_MEMORY = os.environ.get("PARCOURS_INGEST_MEMORY", "2GB")
"""How much memory one file's checks may take in the engine before it spills to disk."""
INTERRUPT_EVERY_SECONDS = 0.05
"""How often the files still running are interrupted when the run is."""
INGEST_THREADS_VARIABLE = "PARCOURS_INGEST_THREADS"
"""How many files are checked side by side; by default as many as the cores this process may use."""
LINKAGE_SCOPE = "/federation"
"""Stands for the agency in a linkage pseudonym's HMAC message: no agency folder can be named so."""


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


# --- quarantine rows ----------------------------------------------------------------------------


def quarantine_rows(
    file: LandingFile,
    entity: str | None,
    lines: pl.DataFrame,
    raw_lines: Callable[[list[int]], dict[int, str]] | None,
) -> pl.DataFrame:
    """Quarantine rows for ``lines`` (``_source_row``, ``_reason``, ``_reason_column``) with their raw lines.

    A raw line is withheld when the row was rejected for holding an identifier, or when the
    line itself shows one (a phone number in a column the contract does not know, say).
    """
    if lines.is_empty():
        return empty_quarantine()
    wanted = [int(n) for n in lines[SOURCE_ROW].drop_nulls().to_list()]
    raw = raw_lines(wanted) if raw_lines is not None else {}
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
    rows = (
        table.source.con.sql(f"select {SOURCE_ROW} from {table.source.rows_sql} order by {POSITION}").pl()
        if table.source is not None
        else pl.DataFrame(schema={SOURCE_ROW: pl.Int64})
    )
    return rows.select(
        pl.col(SOURCE_ROW).cast(pl.Int64),
        pl.lit(reason.value).alias(REASON),
        pl.lit(column, dtype=pl.String).alias(REASON_COLUMN),
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


# --- pseudonyms -----------------------------------------------------------------------------------


def _pseudonym_maps(con: Connection, checked: str, entity: Entity, agency: str, key: bytes) -> dict[str, str]:
    """For each pseudonym field: a query mapping each distinct accepted value to its pseudonym, keyed
    hashes computed in the engine (``pseudonyms.keyed_hash_sql``, no value leaves it); the join puts
    them back in place. One statement for every field of the table (a statement costs the engine
    milliseconds however few its values), each field hashed in its own scope: the agency, or the
    federation for linkage pseudonyms (both bound as parameters). Returns field -> query."""
    fields = [(n, f) for n, f in enumerate(entity.fields) if f.pseudonym]
    if not fields:
        return {}
    table = f"{checked}_pseudonyms"
    each = " union all ".join(
        f"select distinct {n}::integer as field, {'$linkage' if f.linkage else '$agency'} as scope, {f.name} as value "
        f"from {checked} where {REASON} is null and {f.name} is not null"
        for n, f in fields
    )
    con.execute(
        f"create or replace temp table {table} as "
        f"select field, value, {keyed_hash_sql('value', 'scope')} as pseudonym from ({each})",
        {
            **keyed_hash_parameters(key, None),
            **({"agency": agency} if any(not f.linkage for _, f in fields) else {}),
            **({"linkage": LINKAGE_SCOPE} if any(f.linkage for _, f in fields) else {}),
        },
    )
    return {f.name: f"(select value, pseudonym from {table} where field = {n})" for n, f in fields}


# --- pass 1: each file alone ----------------------------------------------------------------------


def _entity_load(
    index: int,
    file: LandingFile,
    table: ReadTable | None,
    entity: str | None,
    message: str,
    file_reason: Reason | None = None,
) -> EntityLoad:
    """What one table of a file brings; ``table`` is None when the file could not be read."""
    return EntityLoad(
        index=index,
        sha256=file.sha256,
        relative_path=file.relative_path,
        agency_folder=file.agency_folder,
        entity=entity,
        period=file.period,
        format=file.format,
        rows_in=table.rows_in if table is not None else 0,
        message=message,
        file_reason=file_reason,
    )


def _stage_quarantine(load: EntityLoad, frame: pl.DataFrame, staging: Path, part: str) -> None:
    if frame.is_empty():
        return
    path = staging / f"q-{load.index}-{part}.parquet"
    frame.write_parquet(path)
    load.quarantine.append(path)
    for reason, count in frame.group_by("reason").len().iter_rows():
        load.counts[str(reason)] = load.counts.get(str(reason), 0) + int(count)


def prepare_table(
    index: int,
    file: LandingFile,
    table: ReadTable,
    contract: Contract,
    key: bytes,
    today: date,
    staging: Path,
) -> EntityLoad:
    """Decide the fate of every row of one table, without touching the warehouse: its accepted rows
    staged as Parquet (typed, re-keyed, with lineage), its quarantined rows too.
    """
    parsed = _parse_rejects(table)
    where = file.relative_path if table.name == file.path.name else f"{file.relative_path} [{table.name}]"
    if table.identifier_in_name:
        message = (
            f"{where}: the sheet's name holds a direct identifier (it is shown by its position); the sheet was "
            "not read: name it after its entity and send the file again"
        )
        return _entity_load(index, file, table, None, message, Reason.IDENTIFIER_IN_NAME)
    if table.entity is None or table.source is None:
        load = _entity_load(
            index,
            file,
            table,
            None,
            f"{where}: cannot tell which entity this holds; name the file <anything>_<entity>"
            f"{file.path.suffix} (or the sheet <entity>), with an entity among {sorted(contract.entities)}",
            Reason.UNKNOWN_ENTITY,
        )
        rejected = pl.concat([parsed, _whole_table(table, Reason.UNKNOWN_ENTITY)])
        _stage_quarantine(load, quarantine_rows(file, None, rejected, table.raw_lines), staging, "read")
        return load
    entity = contract.entity(table.entity)
    source = table.source
    try:
        checked = validate_table(source, entity, table.decimal_comma, file.agency_folder, today)
    except FileProblem as problem:
        load = _entity_load(
            index,
            file,
            table,
            table.entity,
            f"{where}: {problem}; an earlier file for the same period, if any, is kept",
            problem.reason,
        )
        rejected = pl.concat([parsed, _whole_table(table, problem.reason)])
        _stage_quarantine(load, quarantine_rows(file, table.entity, rejected, table.raw_lines), staging, "read")
        return load
    con = source.con
    notes = []
    if checked.ignored_columns:
        notes.append(f"columns not in the contract, not stored: {', '.join(checked.ignored_columns)}")
    if not table.line_numbers_exact:
        notes.append("line numbers unavailable for accepted rows (the file has multi-line fields)")
    load = _entity_load(index, file, table, table.entity, f"{where}: " + ("; ".join(notes) if notes else "read"))
    refused = (
        con.sql(
            f"select {SOURCE_ROW}, {REASON}, {REASON_COLUMN} from {checked.table} "
            f"where {REASON} is not null order by {POSITION}"
        ).pl()
        if checked.any_rejected
        else pl.DataFrame(schema={SOURCE_ROW: pl.Int64, REASON: pl.String, REASON_COLUMN: pl.String})
    )
    rejected = pl.concat([parsed, refused])
    _stage_quarantine(load, quarantine_rows(file, table.entity, rejected, table.raw_lines), staging, "read")
    maps = _pseudonym_maps(con, checked.table, entity, file.agency_folder, key)
    q = warehouse.quote_identifier
    values = ", ".join(
        f"m{n}.pseudonym as {q(f.name)}" if f.name in maps else f"c.{q(f.name)}" for n, f in enumerate(entity.fields)
    )
    joins = " ".join(
        f"left join {maps[f.name]} as m{n} on m{n}.value = c.{q(f.name)}"
        for n, f in enumerate(entity.fields)
        if f.name in maps
    )
    load.staged = staging / f"a-{index}.parquet"
    load.staged_rows = warehouse.copy_to_parquet(
        con,
        f"select {values}, $agency as _agency_folder, $file as _source_file, $sha as _source_sha256, "
        f"c.{SOURCE_ROW} from {checked.table} as c {joins} where c.{REASON} is null order by c.{POSITION}",
        load.staged,
        {"agency": file.agency_folder, "file": file.relative_path, "sha": file.sha256},
    )
    return load


def prepare_file(
    file: LandingFile,
    contract: Contract,
    key: bytes,
    today: date,
    config: AgenciesConfig,
    staging: Path,
    con: Connection | None = None,
) -> list[EntityLoad]:
    """Every table of one file, decided in its own connection, its loads numbered from 0 (the run numbers
    them across files); any error becomes the file's own report (never the batch's end). ``con``: the
    file's own connection to the run's scratch engine (``ScratchEngine.connection``), which the caller
    closes once the file is done: its temporary tables are seen by no other file and go with it. Without
    one, the file gets a new in-memory engine (about 25 ms to start, a thousand times a connection), closed
    here."""
    own = con is None
    try:
        con = con or scratch_engine(staging)
        read = read_landing_file(file, contract, options_for(file.agency_folder, config), con)
        return [prepare_table(n, file, table, contract, key, today, staging) for n, table in enumerate(read.tables)]
    except FileProblem as problem:
        return [_entity_load(0, file, None, None, str(problem), problem.reason)]
    except LIBRARY_FAILURES as exc:  # a bug, a library's panic or a resource limit on this file: keep going
        return [failed_load(0, file, exc)]
    finally:
        if own and con is not None:
            con.close()


def scratch_engine(staging: Path) -> Connection:
    """An in-memory engine for files' checks, apart from the warehouse, spilling under ``staging``."""
    return warehouse.scratch_connection(staging / "spill", SCRATCH_MEMORY)


def _usable(engine: Connection) -> bool:
    """Whether the scratch engine still answers (a fatal error in one file's checks would invalidate it)."""
    try:
        probe = engine.cursor()  # a connection of its own: other threads are using theirs
        try:
            return probe.execute("select 1").fetchall() == [(1,)]
        finally:
            probe.close()
    except Exception:  # whatever DuckDB raises, the engine is replaced
        return False


class ScratchEngine:
    """The run's scratch engine (one for the run, so that a file costs no engine's start), shared by the files
    checked side by side, each in a connection of its own. A fatal error in a file's checks invalidates a
    DuckDB database: the files after it then get a new engine. The engine's memory limit (``SCRATCH_MEMORY``)
    is shared by the files checked at once: past it, DuckDB spills to disk."""

    def __init__(self, staging: Path) -> None:
        self._staging = staging
        self._lock = threading.Lock()
        self._current = scratch_engine(staging)
        self._open: set[Connection] = set()

    def connection(self) -> tuple[Connection, Connection]:
        """The current engine and a new connection to it, to give back with ``release``."""
        with self._lock:
            try:
                con = self._current.cursor()
            except Exception:  # closed or invalidated by a file's failure: replaced now
                self._replace()
                con = self._current.cursor()
            self._open.add(con)
            return self._current, con

    def release(self, con: Connection) -> None:
        with self._lock:
            self._open.discard(con)
        with contextlib.suppress(Exception):  # its engine closed already (a file broke it)
            con.close()

    def interrupt(self) -> None:
        """Stop the statements running in every connection given out (the run is being interrupted: a worker
        thread never sees the signal, and its file could take minutes to finish otherwise)."""
        with self._lock:
            for con in self._open:
                with contextlib.suppress(Exception):
                    con.interrupt()

    def replaced_if_broken(self, engine: Connection) -> None:
        """A new engine in place of ``engine``, where a file just failed, if it is still the current one and no
        longer answers."""
        with self._lock:
            if engine is self._current and not _usable(engine):
                self._replace()

    def _replace(self) -> None:
        with contextlib.suppress(Exception):  # closing what is broken may raise too
            self._current.close()
        self._current = scratch_engine(self._staging)

    def close(self) -> None:
        with self._lock, contextlib.suppress(Exception):
            self._current.close()


def ingest_threads() -> int:
    """How many files are checked side by side: ``PARCOURS_INGEST_THREADS``, else the usable cores."""
    return configured_threads(INGEST_THREADS_VARIABLE)


def failed_load(index: int, file: LandingFile, exc: BaseException) -> EntityLoad:
    """A file whose reading or checking raised: no row taken, tried again at the next run.
    The message names the error's type only: an exception's text may quote a value."""
    message = (
        f"{file.relative_path}: reading or checking the file failed ({type(exc).__name__}); nothing was taken "
        "from it and it will be tried again at the next run"
    )
    return _entity_load(index, file, None, None, message, Reason.PROCESSING_ERROR)


# --- the run --------------------------------------------------------------------------------------


def ingest_files(
    con: Connection,
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
    zone = RawZone.of(con)
    remove_unlisted(con, zone)  # what a killed run left
    already = known_files(con)
    reports: dict[int, FileReport] = {}  # by position: two paths may share a relative path
    seen_now: set[tuple[str, str]] = set()
    order = sorted(files, key=lambda f: f.relative_path)
    staging = zone.staging()
    todo: list[tuple[int, LandingFile]] = []
    for i, file in enumerate(order, start=1):
        identity = (file.agency_folder, file.sha256)
        if identity in already or identity in seen_now:
            reports[i] = FileReport(
                file.relative_path,
                file.sha256,
                "duplicate",
                0,
                0,
                0,
                {},
                f"{file.relative_path}: same content as a file already received from this agency; nothing added",
            )
            continue
        seen_now.add(identity)
        todo.append((i, file))
    engine = ScratchEngine(staging)
    try:
        prepared = _prepare_files(todo, len(order), engine, contract, key, today, config, staging, say)
    finally:
        engine.close()
    loads = [load for file_loads in prepared for load in file_loads]
    for index, load in enumerate(loads):  # each file numbered its tables from 0, in a staging folder of its own
        load.index = index
    by_identity = {(f.agency_folder, f.sha256): f for f in order}
    _choose_winners(loads)
    replaced = _replaced_files(loads, current_files(con))
    settle(con, contract, loads, replaced, by_identity, config, staging)
    for load in loads:
        if load.status != "superseded":
            load.finish()
    write_loads(con, contract, loads, zone)

    for i, file in enumerate(order, start=1):
        if i not in reports:
            reports[i] = _file_report(
                file, [load for load in loads if load.identity == (file.agency_folder, file.sha256)]
            )
    return [reports[i] for i in range(1, len(order) + 1)]


def _prepare_files(
    todo: list[tuple[int, LandingFile]],
    total: int,
    engine: ScratchEngine,
    contract: Contract,
    key: bytes,
    today: date,
    config: AgenciesConfig,
    staging: Path,
    say: Progress,
) -> list[list[EntityLoad]]:
    """Each file's loads (``prepare_file``), in ``todo``'s order, the files checked side by side on
    ``ingest_threads()`` threads, each in its own connection to the run's scratch engine.

    A small file's checks are a fixed cost of planning statements, which DuckDB does on one core: the demo's
    84 files took 5.0 s one after the other and 2.9 s two at a time, with the same staged rows; at 1,000,000
    persons the ingestion took 0.79 times as long (``docs/benchmarks-notes.md``). Each file stages under a
    folder of its own (``f<i>``) and numbers its tables from 0; the caller numbers the run's loads.

    What a file beside it did can make a file fail: break the engine they share, or take the memory it needed.
    So a file that failed with a processing error beside others is checked again, alone, once they are done:
    the run is then the same as one file at a time (a file that fails alone fails again, and its failure
    stands)."""
    results: list[list[EntityLoad]] = [[] for _ in todo]
    again: list[int] = []

    def check(position: int, beside_others: bool = False, attempt: str = "") -> None:
        i, file = todo[position]
        folder = staging / f"f{i}{attempt}"
        folder.mkdir()
        used, con = engine.connection()
        try:
            loads = prepare_file(file, contract, key, today, config, folder, con)
        finally:
            engine.release(con)
        results[position] = loads
        if any(load.file_reason is Reason.PROCESSING_ERROR for load in loads):
            engine.replaced_if_broken(used)
            if beside_others:
                again.append(position)

    def started(position: int) -> int:
        i, file = todo[position]
        say(f"[{i}/{total}] checking {file.relative_path}")
        return position

    workers = min(ingest_threads(), len(todo))
    if workers <= 1:
        for position in range(len(todo)):
            check(started(position))
        return results
    waiting = iter(range(len(todo)))
    with ThreadPoolExecutor(workers, thread_name_prefix="ingest-file") as pool:
        running = {pool.submit(check, started(p), True) for p in itertools.islice(waiting, workers)}
        try:
            while running:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()  # what ``prepare_file`` does not keep to the file (an interruption) ends the run
                    running |= {pool.submit(check, started(p), True) for p in itertools.islice(waiting, 1)}
        except BaseException:
            # A worker never sees the signal, and DuckDB forgets an interruption its connection gets between
            # two statements: the files still running are interrupted until they have stopped.
            still = running
            while still:
                engine.interrupt()
                still = wait(still, timeout=INTERRUPT_EVERY_SECONDS).not_done
            raise
    for position in sorted(again):
        check(position, attempt="-again")
    return results


def _choose_winners(loads: list[EntityLoad]) -> None:
    """Within a run, the last file (by path) for an agency, entity and period wins; a file refused
    whole (a file reason) never replaces another one, and is never superseded by one."""
    winner: dict[tuple[str, str, str], tuple[str, str]] = {}
    for load in loads:
        if load.entity is not None and load.file_reason is None:
            winner[(load.agency_folder, load.entity, load.period)] = load.identity
    for load in loads:
        if load.entity is None or load.file_reason is not None:
            continue
        if winner[(load.agency_folder, load.entity, load.period)] != load.identity:
            load.status = "superseded"
            load.message += "; replaced by a later file for the same agency, entity and period in this run"


def _replaced_files(loads: list[EntityLoad], current: pl.DataFrame) -> dict[str, set[tuple[str, str]]]:
    """Per entity, the stored files (agency, SHA-256) this run's files replace (their rows no longer count)."""
    replaced: dict[str, set[tuple[str, str]]] = {}
    for load in loads:
        if load.entity is None or load.file_reason is not None or load.status == "superseded":
            continue
        same_key = current.filter(
            (pl.col("agency_folder") == load.agency_folder)
            & (pl.col("entity") == load.entity)
            & (pl.col("period") == load.period)
            & (pl.col("sha256") != load.sha256)
        )["sha256"].to_list()
        replaced.setdefault(load.entity, set()).update((load.agency_folder, sha) for sha in same_key)
    return replaced


# --- pass 2: across files -------------------------------------------------------------------------


def settle(
    con: Connection,
    contract: Contract,
    loads: list[EntityLoad],
    replaced: dict[str, set[tuple[str, str]]],
    by_identity: dict[tuple[str, str], LandingFile],
    config: AgenciesConfig,
    staging: Path,
) -> None:
    """Quarantine, set-based, the staged rows already received (stored, files about to be replaced
    excepted, or staged earlier in the run) and the rows whose references resolve to nothing (held
    back), parents first so that a row held in this run is no parent for its own children. The
    rows taken are left in ``_settled_rows`` (load, row in its staged file, reason, column)."""
    con.execute(
        f"create or replace temp table {SETTLED_TABLE} (load integer, row bigint, reason varchar, column_name varchar, "
        f"{SOURCE_ROW} bigint)"
    )
    live = [
        load
        for load in loads
        if load.status != "superseded" and load.entity is not None and load.staged is not None and load.staged_rows
    ]
    for entity in contract.entities:
        for group, stored in _duplicate_groups(con, contract, entity, live, replaced.get(entity, set())):
            _settle_duplicates(con, contract, entity, group, replaced.get(entity, set()), stored)
    for entity in parents_first({load.entity for load in live if load.entity is not None}):
        group = [load for load in live if load.entity == entity]
        if references_of(entity):
            _settle_orphans(con, contract, entity, group, live, replaced)
    taken = warehouse.query(
        con,
        f"select load, reason, count(*) as n from {SETTLED_TABLE} group by all",
    )
    for load_index, reason, n in taken.iter_rows():
        load = next(item for item in live if item.index == load_index)
        load.removed += int(n)
        if reason == Reason.ORPHAN_REFERENCE.value:
            load.held += int(n)
    for load in live:
        if load.removed:
            file = by_identity[load.identity]
            _quarantine_settled(con, load, file, staging, options_for(file.agency_folder, config))


def _staged_rows(loads: list[EntityLoad], columns: str = "*") -> str:
    """The staged rows of ``loads`` with ``_load`` and ``_row`` (a row's place in its staged file)."""
    parts = [
        f"select {int(load.index)} as _load, file_row_number as _row, {columns} "
        f"from read_parquet({warehouse.parquet_list_sql([load.staged or Path()])}, file_row_number = true)"
        for load in loads
    ]
    return " union all ".join(parts)


def _excluded(files: set[tuple[str, str]]) -> str:
    pairs = ", ".join(
        f"({warehouse.sql_literal(agency)}, {warehouse.sql_literal(sha)})" for agency, sha in sorted(files)
    )
    return f"(_agency_folder, _source_sha256) not in (select * from (values {pairs}))" if files else "true"


def _duplicate_groups(
    con: Connection,
    contract: Contract,
    entity: str,
    live: list[EntityLoad],
    replaced: set[tuple[str, str]],
) -> list[tuple[list[EntityLoad], bool]]:
    """The loads whose rows can repeat one another, with whether stored rows can be repeated too.

    A key holding an agency's pseudonym (re-keyed with the agency) can only repeat a key of the same
    agency: such an entity is checked agency by agency, and only where there is something to compare
    (two files of the run, or rows stored before). Other keys are compared across agencies."""
    loads = [load for load in live if load.entity == entity]
    if not loads:
        return []
    stored_exists = warehouse.table_exists(con, raw_table_name(entity))
    scoped = any(
        f.pseudonym and not f.linkage
        for f in contract.entity(entity).fields
        if f.name in contract.entity(entity).primary_key
    )
    listed = listed_files(con, entity)
    if not scoped or (
        stored_exists
        and warehouse.scalar(
            con, "select table_type from information_schema.tables where table_name = ?", [raw_table_name(entity)]
        )
        == "BASE TABLE"
    ):
        return [(loads, stored_exists)]
    stored_by = {
        str(agency)
        for agency, sha in listed.select("agency_folder", "sha256").iter_rows()
        if (agency, sha) not in replaced
    }
    groups = []
    for agency in sorted({load.agency_folder for load in loads}):
        mine = [load for load in loads if load.agency_folder == agency]
        if len(mine) > 1 or agency in stored_by:
            groups.append((mine, agency in stored_by))
    return groups


def _settle_duplicates(
    con: Connection,
    contract: Contract,
    entity: str,
    group: list[EntityLoad],
    replaced: set[tuple[str, str]],
    stored_rows: bool,
) -> None:
    q = warehouse.quote_identifier
    fields = contract.entity(entity).field_names
    key = list(contract.entity(entity).primary_key)
    others = [c for c in fields if c not in key]
    same = " and ".join(f"s.{q(c)} is not distinct from r.{q(c)}" for c in others) or "true"
    on_key = " and ".join(f"s.{q(k)} = r.{q(k)}" for k in key)
    rows = _staged_rows(group, ", ".join([*(q(c) for c in fields), AGENCY, SOURCE_ROW]))
    stored = raw_table_name(entity)
    stored_match = (
        f"select r._load, r._row, bool_or({same}) as identical from rows as r "
        f"join (select * from {q(stored)} where {_excluded(replaced)}) as s on {on_key} group by r._load, r._row"
        if stored_rows
        else "select null::integer as _load, null::bigint as _row, null::boolean as identical where false"
    )
    con.execute(
        f"""
        insert into {SETTLED_TABLE}
        with rows as ({rows}),
        stored_match as ({stored_match}),
        remaining as (select * from rows anti join stored_match using (_load, _row)),
        ranked as (
            select _load, _row, {SOURCE_ROW},
                row_number() over (partition by {", ".join(q(k) for k in key)} order by _load, _row) as copy,
                min(_load * 4294967296 + _row) over (partition by {", ".join(q(k) for k in key)}) as first_key,
                min(_load * 4294967296 + _row) over (partition by {", ".join(q(c) for c in fields)}) as first_same
            from remaining
        )
        select m._load, m._row, case when m.identical then '{Reason.DUPLICATE_ROW.value}'
            else '{Reason.DUPLICATE_KEY.value}' end, {warehouse.sql_literal(",".join(key))}, r.{SOURCE_ROW}
        from stored_match as m join rows as r using (_load, _row)
        union all
        select _load, _row, case when first_same = first_key then '{Reason.DUPLICATE_ROW.value}'
            else '{Reason.DUPLICATE_KEY.value}' end, {warehouse.sql_literal(",".join(key))}, {SOURCE_ROW}
        from ranked where copy > 1
        """
    )


def _settle_orphans(
    con: Connection,
    contract: Contract,
    entity: str,
    group: list[EntityLoad],
    live: list[EntityLoad],
    replaced: dict[str, set[tuple[str, str]]],
) -> None:
    rules = [rule for rule in references_of(entity) if rule.column in contract.entity(entity).field_names]
    if not group or not rules:
        return
    limit = warehouse.memory_limit_bytes(con)
    per_batch = ORPHAN_CHECK_ROWS_PER_GB * (limit if limit is not None else 2 * 10**9) // 10**9
    for agencies in agency_batches({load.agency_folder: load.staged_rows for load in group}, max(per_batch, 1)):
        _settle_orphans_of(
            con,
            rules,
            [load for load in group if load.agency_folder in agencies],
            [load for load in live if load.agency_folder in agencies],
            replaced,
            agencies,
        )


ORPHAN_CHECK_ROWS_PER_GB = 5_000_000
"""Staged rows checked for orphans in one statement, for each GB of DuckDB's memory limit. At 10,000,000
persons one statement over all of an entity's rows ran out of the 2 GB limit (a correlated ``exists``
that DuckDB kept in memory whole), as 1,000,000 persons do under 200 MB. The check is now anti joins,
which DuckDB can spill, and references resolve within an agency, so agencies are also checked in batches
(``agency_batches``) whose hash tables (their parents' keys) stay small: one batch up to about 10 million
rows under the default limit, every agency at once for the demo."""


def agency_batches(rows_by_agency: dict[str, int], most: int) -> list[set[str]]:
    """Agencies in order, grouped so that a group's rows stay within ``most`` (an agency with more is
    a group of its own: its rows are never split)."""
    batches: list[set[str]] = []
    current: set[str] = set()
    size = 0
    for agency in sorted(rows_by_agency):
        rows = rows_by_agency[agency]
        if current and size + rows > most:
            batches.append(current)
            current, size = set(), 0
        current.add(agency)
        size += rows
    if current:
        batches.append(current)
    return batches


def _settle_orphans_of(
    con: Connection,
    rules: list[Reference],
    group: list[EntityLoad],
    live: list[EntityLoad],
    replaced: dict[str, set[tuple[str, str]]],
    agencies: set[str],
) -> None:
    """The orphan check of ``group`` (loads of ``agencies``) against the parents of those agencies: for
    each reference, the rows not yet settled whose value names no parent of their agency (an anti join,
    which DuckDB can spill; a correlated ``exists`` kept every row of the group in memory), and for each
    such row the first reference that failed, in the contract's order."""
    q = warehouse.quote_identifier
    columns = sorted({rule.column for rule in rules})
    rows = _staged_rows(group, ", ".join([*(q(c) for c in columns), AGENCY, SOURCE_ROW]))
    among = ", ".join(warehouse.sql_literal(a) for a in sorted(agencies))
    unresolved = []
    for n, rule in enumerate(rules):
        sources = []
        stored = raw_table_name(rule.parent)
        if warehouse.table_exists(con, stored):
            sources.append(
                f"select {AGENCY}, {q(rule.parent_column)} as k from {q(stored)} "
                f"where {AGENCY} in ({among}) and {_excluded(replaced.get(rule.parent, set()))}"
            )
        parents = [load for load in live if load.entity == rule.parent]
        if parents:  # accepted in this run: staged, less what the checks across files took
            staged = _staged_rows(parents, f"{AGENCY}, {q(rule.parent_column)}")
            sources.append(
                f"select p.{AGENCY}, p.{q(rule.parent_column)} as k from ({staged}) as p "
                f"anti join {SETTLED_TABLE} as t on t.load = p._load and t.row = p._row"
            )
        known = " union all ".join(sources) or f"select null::varchar as {AGENCY}, null::varchar as k where false"
        unresolved.append(
            f"select r._load, r._row, r.{SOURCE_ROW}, {n} as rule from rows as r "
            f"anti join {SETTLED_TABLE} as t on t.load = r._load and t.row = r._row "
            f"anti join ({known}) as p on p.{AGENCY} = r.{AGENCY} and p.k = r.{q(rule.column)} "
            f"where r.{q(rule.column)} is not null"
        )
    first = " ".join(f"when {n} then {warehouse.sql_literal(r.column)}" for n, r in enumerate(rules))
    con.execute(
        f"""
        insert into {SETTLED_TABLE}
        with rows as not materialized ({rows})
        select _load, _row, '{Reason.ORPHAN_REFERENCE.value}', case min(rule) {first} end, any_value({SOURCE_ROW})
        from ({" union all ".join(unresolved)}) group by _load, _row
        """
    )


def _quarantine_settled(
    con: Connection, load: EntityLoad, file: LandingFile, staging: Path, options: ReadOptions
) -> None:
    """The quarantine rows of what the checks across files took from ``load``, with their raw lines
    (read back from the file: the line offsets of a CSV are found again only for such files)."""
    taken = warehouse.query(
        con,
        f"select {SOURCE_ROW}, reason as {REASON}, column_name as {REASON_COLUMN} from {SETTLED_TABLE} "
        f"where load = {int(load.index)} order by row",
    )
    raw_lines = _raw_lines_again(file, load, options)
    _stage_quarantine(load, quarantine_rows(file, load.entity, taken, raw_lines), staging, "settled")
    if load.held:
        note = (
            f"rows held back: {load.held:,} (they point to a person, episode or care manager not received from "
            "this agency; released automatically when it arrives)"
        )
        load.message = f"{load.message.removesuffix(': read')}{': ' if load.message.endswith(': read') else '; '}{note}"


def _raw_lines_again(
    file: LandingFile, load: EntityLoad, options: ReadOptions
) -> Callable[[list[int]], dict[int, str]]:
    """Raw lines of a file already checked: a CSV's from its bytes; other formats read again."""

    def read(lines: list[int]) -> dict[int, str]:
        if not lines:
            return {}
        if file.format == "csv":
            return line_reader(file.path, options.encoding or detect_encoding(file.path))(lines)
        from pipelines.contract import load_contract

        scratch = warehouse.scratch_connection()
        try:
            tables = read_landing_file(file, load_contract(), options, scratch).tables
            table = next((t for t in tables if t.entity == load.entity and t.raw_lines is not None), None)
            return table.raw_lines(lines) if table is not None and table.raw_lines is not None else {}
        finally:
            scratch.close()

    return read


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
