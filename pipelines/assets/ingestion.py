"""Landing files → raw tables (accepted rows), the quarantine and the ledger of files."""

import json
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import dagster as dg
import polars as pl

from pipelines import warehouse
from pipelines.contract import load_contract
from pipelines.impact.threads import import_study_libraries
from pipelines.ingest.config import ConfigError, load_agencies_config
from pipelines.ingest.load import (
    LANDING_FILES_TABLE,
    QUARANTINE_TABLE,
    entities_lost,
    known_files,
    raw_table_name,
    stored_orphans,
    unaccounted_rows,
)
from pipelines.ingest.pseudonyms import PseudonymKeyError, load_key
from pipelines.ingest.readers import LandingFile, discover_landing_files
from pipelines.ingest.service import FileReport, ingest_files
from pipelines.operations.batches import keep_inputs, record_batch
from pipelines.operations.status import publish_operations
from pipelines.partitions import LANDING_PARTITIONS, files_by_partition
from pipelines.resources import ParcoursResource
from pipelines.settings import Settings
from pipelines.writer_lock import WriterBusyError, writer_lock
from quality.report import (
    QUALITY_RESULTS_TABLE,
    beside_the_suites,
    data_docs_folder,
    render_report,
    store_suite_outcomes,
    suites_input,
    validating_suites,
)
from quality.suites_process import start_ahead as start_suites_process

RUN_PARAMETERS_TABLE = "ref_run_parameters"
SUITES_SECONDS = "contract_suites_seconds"
"""Metadata of the ledger's materialisation: the Great Expectations step's own time within the ingestion
step, from its request to its outcomes stored (the bench reports it as the ``quality`` stage); the zone's cheap
checks (row counts, rows unaccounted, entities lost) run within it, beside the suites' process; the orphans'
join runs before it."""
RETRY = dg.RetryPolicy(max_retries=2, delay=2, backoff=dg.Backoff.EXPONENTIAL)
"""Retries cover a warehouse briefly locked by another writer; a bad file never fails a step."""
AGENCY_EXPORTS = "agency_exports"


@contextmanager
def writing(settings: Settings, run_id: str) -> Iterator[None]:
    """The working database's writer lock for this run's step; a clear failure when another run holds it."""
    try:
        with writer_lock(settings.warehouse_path, f"run {run_id}"):
            yield
    except WriterBusyError as exc:
        raise dg.Failure(description=str(exc)) from None


def ingest_batch(
    con: Any,
    settings: Settings,
    files: list[LandingFile],
    partitions: list[str],
    run_id: str,
    say: Callable[[str], None],
) -> list[FileReport]:
    """Ingest ``files`` as one batch: keep their bytes, ingest, record the batch (``pipelines.operations``)."""
    try:
        key = load_key()
        config = load_agencies_config(settings.agencies_config)
    except (PseudonymKeyError, ConfigError) as exc:
        raise dg.Failure(str(exc)) from None
    today = settings.today or date.today()
    kept = keep_inputs(settings.data_dir, files)
    reports = ingest_files(con, files, load_contract(), key, today, config, say)
    if files:
        record_batch(con, run_id, partitions, today, files, reports, kept)
        publish_operations(con, settings.serving_path, {"run_id": run_id, "partitions": ",".join(partitions)})
    return reports


def _agency_exports(context: dg.AssetExecutionContext, parcours: ParcoursResource) -> dg.MaterializeResult:
    settings = parcours.settings()
    wanted = list(context.partition_keys)
    grouped = files_by_partition(discover_landing_files(settings.landing_dir))
    files = [f for k in wanted for f in grouped.get(k, [])]
    with writing(settings, context.run.run_id), warehouse.connect(settings.warehouse_path) as con:
        reports = ingest_batch(con, settings, files, wanted, context.run.run_id, context.log.info)
    for report in reports:
        if report.status in ("rejected", "partial"):
            context.log.warning(report.message)
    by_status: dict[str, int] = {}
    for report in reports:
        by_status[report.status] = by_status.get(report.status, 0) + 1
    context.log.info(f"{len(files)} files in {len(wanted)} partitions: {json.dumps(by_status, sort_keys=True)}")
    return dg.MaterializeResult(
        metadata={
            "files": len(files),
            "rows_accepted": sum(r.rows_accepted for r in reports),
            "rows_quarantined": sum(r.rows_quarantined for r in reports),
            **{f"files_{status}": n for status, n in by_status.items()},
        }
    )


with warnings.catch_warnings():
    # A single run for a range of partitions (BackfillPolicy) is marked beta; the behaviour relied on is
    # covered by tests/test_operations.py.
    warnings.simplefilter("ignore", dg.BetaWarning)
    agency_exports = dg.asset(
        name=AGENCY_EXPORTS,
        partitions_def=LANDING_PARTITIONS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name="landing",
        kinds={"duckdb"},
        tags={"parcours/writer": "warehouse"},
        description="Each agency's export for one period, ingested into the raw zone: one partition per agency and "
        "export period (AG001/202606), the raw zone's own partition. A late or corrected export re-runs its "
        "partition only; the contract suites and the checks of the whole raw zone run in raw_tables.",
        retry_policy=RETRY,
    )(_agency_exports)


def raw_asset_keys() -> list[str]:
    return [raw_table_name(e) for e in load_contract().entities] + [QUARANTINE_TABLE, LANDING_FILES_TABLE]


def suite_check_specs() -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            "contract_suite",
            asset=raw_table_name(entity),
            blocking=True,
            description="Great Expectations suite from the data contract: conformance and completeness failures "
            "are errors that stop the models; plausibility failures are warnings.",
        )
        for entity in load_contract().entities
    ]


def _description(key: str) -> str:
    if key == LANDING_FILES_TABLE:
        return "Ledger of every agency file received: SHA-256, status, rows in, accepted and quarantined."
    if key == QUARANTINE_TABLE:
        return "Every rejected row with its file's SHA-256, line, reason code and raw line (withheld if identifying)."
    return (
        f"Accepted rows of {key.removeprefix('raw_')}, typed by the data contract, pseudonyms re-keyed, with lineage."
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            key, group_name="ingestion", kinds={"duckdb"}, description=_description(key), deps=[AGENCY_EXPORTS]
        )
        for key in raw_asset_keys()
    ],
    check_specs=[
        dg.AssetCheckSpec(
            "every_row_accounted_for",
            asset=LANDING_FILES_TABLE,
            blocking=True,
            description="For every current file, rows in = rows accepted + rows quarantined, and both are stored.",
        ),
        dg.AssetCheckSpec(
            "no_agency_loses_an_entity",
            asset=LANDING_FILES_TABLE,
            blocking=True,
            description="No agency that sent rows of an entity (its persons, say) ends up with none stored: a file "
            "refused whole or every row quarantined stops the run instead of publishing figures without them.",
        ),
        dg.AssetCheckSpec(
            "references_resolve",
            asset=LANDING_FILES_TABLE,
            description="Stored rows all point to a stored person, episode or care manager of their agency "
            "(a replaced file can leave some behind). A warning: incoming orphans are held back at ingestion.",
        ),
        *suite_check_specs(),
    ],
    retry_policy=RETRY,
)
def raw_tables(context: dg.AssetExecutionContext, parcours: ParcoursResource):
    # The suites' process imports Great Expectations while the files below are ingested (a run started it
    # already: then this does nothing).
    start_suites_process()
    settings = parcours.settings()
    contract = load_contract()
    # The first step of every run: what a killed publication left behind goes now.
    for folder in sorted({settings.serving_path.parent, settings.analyst_snapshot.parent}):
        for leftover in warehouse.remove_stale_temporaries(folder):
            context.log.warning(f"removed {leftover.name}, left in {folder} by an interrupted publication")
    files = discover_landing_files(settings.landing_dir)
    with writing(settings, context.run.run_id), warehouse.connect(settings.warehouse_path) as con:
        known = known_files(con)
        if not files and not known:
            raise dg.Failure(
                f"No agency export found under {settings.landing_dir}. Put each agency's files in "
                "landing/<agency>/ (or run `parcours generate` for a synthetic federation)."
            )
        context.log.info(f"{len(files)} landing files under {settings.landing_dir}")
        today = settings.today or date.today()
        # Partition runs (agency_exports) ingest files as they come; what arrived since, or a run without
        # them, is ingested here as one more batch, so that a release never misses a file it was given.
        unseen = [f for f in files if (f.agency_folder, f.sha256) not in known]
        reports = ingest_batch(con, settings, unseen, ["*"], context.run.run_id, context.log.info)
        # Rows whose reference is missing, before the suites: a join of the largest tables that grows with the
        # zone (11 s on both cores at 1,000,000 persons; 14 s under the lowered limit beside the suites, whose
        # own work it then slowed), where the checks below are a few hundred milliseconds at any size.
        orphans = stored_orphans(con, contract)
        context.log.info("running the contract's Great Expectations suites on the raw zone")
        started = time.perf_counter()
        checked = suites_input(con, contract)
        with validating_suites(checked, contract, today, data_docs_folder(settings.data_dir)) as suites_answer:
            # The suites run in their own process: the zone's cheap checks run here meanwhile, under what the
            # suites' share leaves of the memory limit, then this process gives back what its buffers hold
            # (1.2 GiB after the ingestion at 1,000,000 persons) while it waits, so that the two stay under
            # 4 GiB together.
            with beside_the_suites(con, settings.warehouse_path):
                counts = {
                    name: int(warehouse.scalar(con, f"select count(*) from {warehouse.quote_identifier(name)}"))
                    for name in raw_asset_keys()
                }
                missing = unaccounted_rows(con, contract)
                lost = entities_lost(con, contract)
            with warehouse.buffers_released(con, settings.warehouse_path):
                import_study_libraries()  # this thread would only wait: the studies' first fit needs them
                suites = suites_answer.outcomes()
        store_suite_outcomes(con, checked, suites)
        suites_seconds = time.perf_counter() - started
    statuses = pl.DataFrame([r.as_json() for r in reports]) if reports else pl.DataFrame()
    by_status = dict(statuses.group_by("status").len().iter_rows()) if reports else {}
    reasons: dict[str, int] = {}
    for report in reports:
        for code, count in report.reasons.items():
            reasons[code] = reasons.get(code, 0) + count
    for report in reports:
        if report.status in ("rejected", "partial"):
            context.log.warning(report.message)
    for name, rows in counts.items():
        metadata: dict[str, object] = {"dagster/row_count": rows}
        if name == LANDING_FILES_TABLE:
            metadata.update({f"files_{status}": n for status, n in by_status.items()})
            metadata["reasons_this_run"] = json.dumps(reasons, sort_keys=True)
            metadata[SUITES_SECONDS] = round(suites_seconds, 3)
        yield dg.MaterializeResult(asset_key=name, metadata=metadata)  # type: ignore[arg-type]
    yield dg.AssetCheckResult(
        asset_key=LANDING_FILES_TABLE,
        check_name="every_row_accounted_for",
        passed=missing.is_empty(),
        metadata={"files_checked": counts[LANDING_FILES_TABLE], "files_with_rows_unaccounted": missing.height},
    )
    losses = losses_message(lost)
    if losses:
        context.log.error(losses)
    yield dg.AssetCheckResult(
        asset_key=LANDING_FILES_TABLE,
        check_name="no_agency_loses_an_entity",
        passed=lost.is_empty(),
        metadata={"entities_lost": lost.height, "problem": losses or "none"},
    )
    yield dg.AssetCheckResult(
        asset_key=LANDING_FILES_TABLE,
        check_name="references_resolve",
        passed=not orphans,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"rows_pointing_nowhere": sum(orphans.values()), "by_reference": json.dumps(orphans, sort_keys=True)},
    )
    for entity in contract.entities:
        outcomes = [o for o in suites if o.entity == entity]
        failed = [o for o in outcomes if not o.success]
        blocking = [o for o in failed if o.category in ("conformance", "completeness")]
        yield dg.AssetCheckResult(
            asset_key=raw_table_name(entity),
            check_name="contract_suite",
            passed=not failed,
            severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
            metadata={
                "expectations": len(outcomes),
                "failed": len(failed),
                "failed_blocking": len(blocking),
                "failed_expectations": ", ".join(sorted({f"{o.expectation}({o.column})" for o in failed})) or "none",
                "results_table": QUALITY_RESULTS_TABLE,
                "data_docs": str(data_docs_folder(settings.data_dir) / "index.html"),
            },
        )


def losses_message(lost: pl.DataFrame) -> str:
    """What an analyst needs to act on each loss: agency, entity, rows received, the files' reasons."""
    if lost.is_empty():
        return ""
    parts = [
        f"{r['agency_folder']} has no {r['entity']} stored although its current files hold {r['rows_in']:,} rows "
        f"({r['reasons'] or 'see raw_landing_files'})"
        for r in lost.iter_rows(named=True)
    ]
    return "; ".join(parts) + ". Fix and resend those files: nothing is published until then."


@dg.asset(
    name=RUN_PARAMETERS_TABLE,
    group_name="reference",
    kinds={"duckdb"},
    description="Analyst settings the SQL models read as a table (never formatted into SQL): the data cut-off. "
    "Its metadata also says the engine settings of the run's DuckDB connections (memory limit, spill folder).",
)
def run_parameters(context: dg.AssetExecutionContext, parcours: ParcoursResource) -> dg.MaterializeResult:
    settings = parcours.settings()
    frame = pl.DataFrame({"data_cutoff": [settings.data_cutoff]}, schema={"data_cutoff": pl.Date})
    with warehouse.connect(settings.warehouse_path) as con:
        warehouse.replace_table(con, RUN_PARAMETERS_TABLE, frame)
        engine = warehouse.effective_settings(con)
    cutoff = settings.data_cutoff.isoformat() if settings.data_cutoff else "derived from the data"
    context.log.info(f"data cut-off: {cutoff}")
    return dg.MaterializeResult(metadata={"data_cutoff": cutoff, **engine})


@dg.asset(
    deps=[LANDING_FILES_TABLE, QUARANTINE_TABLE],
    group_name="ingestion",
    kinds={"markdown"},
    description="Quality report for analysts: files by status, quarantined rows by reason, contract suites. "
    "Counts and rates only.",
)
def quality_report(context: dg.AssetExecutionContext, parcours: ParcoursResource) -> dg.MaterializeResult:
    settings = parcours.settings()
    with warehouse.connect(settings.warehouse_path) as con:
        text = render_report(con, data_docs_folder(settings.data_dir))
    path = settings.data_dir / "reports" / "quality-report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    context.log.info(f"quality report written to {path}")
    return dg.MaterializeResult(metadata={"path": str(path), "report": dg.MetadataValue.md(text)})
