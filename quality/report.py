"""The analysts' quality report: counts and rates per file, reason and expectation, never values."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from pipelines import warehouse
from pipelines.contract import Contract
from pipelines.ingest.load import LANDING_FILES_TABLE, QUARANTINE_TABLE, raw_table_name
from pipelines.ingest.raw_zone import RawZone, view_select
from pipelines.ingest.reasons import DESCRIPTIONS, Reason
from pipelines.warehouse import Connection
from quality.suites import SUITES_MEMORY_SHARE, ExpectationOutcome, floored_share
from quality.suites_process import Pending, suites_process

QUALITY_RESULTS_TABLE = "quality_results"


def data_docs_folder(data_dir: Path) -> Path:
    """Where the Great Expectations Data Docs site is written (open ``index.html``): beside the quality
    report, in the analysts' zone (nothing there is published)."""
    return data_dir / "reports" / "data-docs"


@dataclass(frozen=True)
class SuitesInput:
    """What the suites need from the working database, read before they run: each entity's ``select`` over
    its raw-zone files, and its stored rows (for the results table)."""

    queries: dict[str, str]
    table_rows: dict[str, int]


def suites_input(con: Connection, contract: Contract) -> SuitesInput:
    zone = RawZone.of(con)
    return SuitesInput(
        queries={entity: view_select(con, zone, contract, entity) for entity in contract.entities},
        table_rows={
            entity: int(
                warehouse.scalar(con, f"select count(*) from {warehouse.quote_identifier(raw_table_name(entity))}")
            )
            for entity in contract.entities
        },
    )


def validate_suites(
    given: SuitesInput, contract: Contract, today: date, data_docs: Path | None = None
) -> list[ExpectationOutcome]:
    """Validate every entity's accepted rows (the raw zone's files, all of them) with its suite and, when
    ``data_docs`` is given, write the Data Docs site there. The suites run in this process's suites' child
    (``quality.suites_process``, started ahead by a run): Great Expectations is never imported here, and
    no connection of this process is used while they run (the run gives back its connection's buffers
    meanwhile: ``warehouse.buffers_released``)."""
    return suites_process().validate(given.queries, contract, today, data_docs)


@contextmanager
def validating_suites(
    given: SuitesInput, contract: Contract, today: date, data_docs: Path | None = None
) -> Iterator[Pending]:
    """``validate_suites`` in two halves: the request goes to the suites' child now, and ``Pending.outcomes``
    waits for its answer within the block, so that what the block does before overlaps the suites (the
    ingestion step's cheap checks of the zone: ``beside_the_suites``)."""
    with suites_process().validating(given.queries, contract, today, data_docs) as pending:
        yield pending


def memory_beside_the_suites(database: Path | None) -> str:
    """The run's DuckDB memory limit while the suites' child validates: what the suites' share
    (``quality.suites.SUITES_MEMORY_SHARE``) leaves of the pipeline's limit, so that the two processes hold one
    limit between them; never under ``SUITES_MEMORY_FLOOR`` unless the pipeline's own limit is (as the
    suites' own share)."""
    return floored_share(str(warehouse.connection_config(database)["memory_limit"]), 1 - SUITES_MEMORY_SHARE)


@contextmanager
def beside_the_suites(con: Connection, database: Path | None) -> Iterator[None]:
    """While the block runs, ``con`` under ``memory_beside_the_suites`` (DuckDB evicts what the ingestion left
    cached above it), then the pipeline's limit again. A connection whose pinned blocks do not fit keeps its
    own limit (as ``warehouse.buffers_released``)."""
    with warehouse.memory_limited(con, memory_beside_the_suites(database), database):
        yield


def store_suite_outcomes(con: Connection, given: SuitesInput, outcomes: list[ExpectationOutcome]) -> None:
    """The outcomes in ``quality_results``, with each entity's stored rows and the time of the check."""
    table = pl.DataFrame([asdict(o) for o in outcomes]).with_columns(
        pl.col("entity").replace_strict(given.table_rows, return_dtype=pl.Int64).alias("table_rows"),
        pl.lit(datetime.now(UTC).replace(tzinfo=None)).alias("checked_at"),
    )
    warehouse.replace_table(con, QUALITY_RESULTS_TABLE, table)


def run_contract_suites(
    con: Connection, contract: Contract, today: date, data_docs: Path | None = None
) -> list[ExpectationOutcome]:
    """``suites_input``, ``validate_suites`` and ``store_suite_outcomes`` on one connection."""
    given = suites_input(con, contract)
    outcomes = validate_suites(given, contract, today, data_docs)
    store_suite_outcomes(con, given, outcomes)
    return outcomes


def render_report(con: Connection, data_docs: Path | None = None) -> str:
    """Markdown: files by status, quarantined rows by reason, failed expectations. Counts only."""
    files = warehouse.query(
        con,
        f"select agency_folder, status, count(distinct sha256) as files, sum(rows_in) as rows_in, "
        f"sum(rows_accepted) as rows_accepted, sum(rows_quarantined) as rows_quarantined "
        f"from {LANDING_FILES_TABLE} group by all order by agency_folder, status",
    )
    reasons = warehouse.query(
        con,
        f"select reason, entity, count(*) as rows from {QUARANTINE_TABLE} group by all order by rows desc, reason",
    )
    results = (
        warehouse.query(con, f"select * from {QUALITY_RESULTS_TABLE} order by entity, category, expectation")
        if warehouse.table_exists(con, QUALITY_RESULTS_TABLE)
        else pl.DataFrame()
    )
    total_in = int(files["rows_in"].sum() or 0)
    quarantined = int(files["rows_quarantined"].sum() or 0)
    lines = [
        "# Parcours quality report",
        "",
        f"Generated {datetime.now(UTC).isoformat(timespec='seconds')}. Counts and rates only: no case value.",
        "",
        f"Rows received: {total_in:,}; quarantined: {quarantined:,} "
        f"({(100 * quarantined / total_in) if total_in else 0:.2f}%).",
        "",
        "## Files by agency and status",
        "",
        "| agency | status | files | rows in | accepted | quarantined |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['agency_folder']} | {r['status']} | {r['files']} | {r['rows_in']:,} | {r['rows_accepted']:,} "
        f"| {r['rows_quarantined']:,} |"
        for r in files.iter_rows(named=True)
    ]
    lines += ["", "## Quarantined rows by reason", "", "| reason | entity | rows | meaning |", "|---|---|---:|---|"]
    lines += [
        f"| `{r['reason']}` | {r['entity'] or ''} | {r['rows']:,} | {DESCRIPTIONS.get(Reason(r['reason']), '')} |"
        for r in reasons.iter_rows(named=True)
    ]
    if reasons.is_empty():
        lines.append("| none | | 0 | |")
    lines += ["", "## Contract suites", ""]
    if results.is_empty():
        lines.append("Not run yet.")
    else:
        summary = results.group_by("entity", "category").agg(
            pl.len().alias("expectations"), (~pl.col("success")).sum().alias("failed")
        )
        rows = results.unique("entity").sort("entity")
        lines.append(
            "Great Expectations validated every accepted row: "
            + ", ".join(f"{r['entity']} {r['table_rows']:,}" for r in rows.iter_rows(named=True))
            + "."
        )
        if data_docs is not None:
            lines += ["", f"Data Docs (the suites and each run's results, counts only): `{data_docs / 'index.html'}`."]
        lines += ["", "| entity | category | expectations | failed |", "|---|---|---:|---:|"]
        lines += [
            f"| {r['entity']} | {r['category']} | {r['expectations']} | {r['failed']} |"
            for r in summary.sort("entity", "category").iter_rows(named=True)
        ]
        failed = results.filter(~pl.col("success"))
        if failed.height:
            lines += ["", "Failed expectations:", ""]
            lines += [
                f"- {r['entity']}: `{r['expectation']}` on {r['column']} ({r['category']}): "
                f"{r['unexpected_count']:,} of {r['element_count']:,} rows ({r['unexpected_percent']:.2f}%)"
                for r in failed.iter_rows(named=True)
            ]
    return "\n".join(lines) + "\n"
