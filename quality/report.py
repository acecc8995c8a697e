"""The analysts' quality report: counts and rates per file, reason and expectation, never values."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, date, datetime

import polars as pl

from pipelines import warehouse
from pipelines.contract import Contract
from pipelines.ingest.load import LANDING_FILES_TABLE, QUARANTINE_TABLE, raw_table_name
from pipelines.ingest.reasons import DESCRIPTIONS, Reason
from pipelines.warehouse import Connection
from quality.suites import ExpectationOutcome, validate_frames

QUALITY_RESULTS_TABLE = "quality_results"
SUITE_SAMPLE_ROWS = 200_000
"""Above this many rows a table's suite runs on a seeded random sample of this size: the suites are
the second line of defence behind row-level quarantine (which checks every row), and Great
Expectations on pandas costs about 4 s per million rows and column. Shares are then estimated
within about 0.2 percentage points."""


def run_contract_suites(con: Connection, contract: Contract, today: date) -> list[ExpectationOutcome]:
    """Validate every raw table with its suite and keep the outcomes in ``quality_results``."""
    frames = {}
    table_rows = {}
    for entity in contract.entities:
        columns = ", ".join(warehouse.quote_identifier(c) for c in contract.entity(entity).field_names)
        source = warehouse.quote_identifier(raw_table_name(entity))
        table_rows[entity] = int(warehouse.scalar(con, f"select count(*) from {source}"))
        sample = (
            f" using sample reservoir({SUITE_SAMPLE_ROWS} rows) repeatable (2026)"
            if table_rows[entity] > SUITE_SAMPLE_ROWS
            else ""
        )
        frames[entity] = con.sql(f"select {columns} from {source}{sample}").df()
    outcomes = validate_frames(frames, contract, today)
    table = pl.DataFrame([asdict(o) for o in outcomes]).with_columns(
        pl.col("entity").replace_strict(table_rows, return_dtype=pl.Int64).alias("table_rows"),
        pl.lit(datetime.now(UTC).replace(tzinfo=None)).alias("checked_at"),
    )
    warehouse.replace_table(con, QUALITY_RESULTS_TABLE, table)
    return outcomes


def render_report(con: Connection) -> str:
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
        sampled = results.filter(pl.col("element_count") < pl.col("table_rows")).unique("entity").sort("entity")
        lines += [
            f"Validated on a seeded sample of {r['element_count']:,} of {r['table_rows']:,} rows: {r['entity']} "
            "(every row was checked by quarantine)."
            for r in sampled.iter_rows(named=True)
        ]
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
