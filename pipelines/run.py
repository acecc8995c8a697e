"""Materialise the whole asset graph in this process, without a UI (``parcours run``).

A run holds the working database's writer lock throughout (``pipelines.writer_lock``: a second run is
refused at once, with who holds it). It first ingests, partition by partition (agency and export
period: ``pipelines.partitions``), the landing files the ledger does not know, in as few Dagster runs
of ``agency_exports`` as the partitions' order allows; then it runs the rest of the graph once: the
checks of the whole raw zone, the models, the studies and the publication of a release.

The run reports through Dagster loggers chosen per run: Dagster's console logger (``log_level``;
``"OFF"`` leaves it out) and, when ``progress`` is given, the one-line-per-stage report of
``pipelines.run_progress``. The run itself is the same either way.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import dagster as dg

from pipelines import warehouse
from pipelines.assets import all_assets
from pipelines.assets.ingestion import AGENCY_EXPORTS, agency_exports
from pipelines.ingest.load import LANDING_FILES_TABLE, known_files
from pipelines.ingest.readers import discover_landing_files
from pipelines.partitions import (
    LANDING_PARTITIONS,
    add_partitions,
    contiguous_ranges,
    partitions_to_ingest,
    range_tags,
)
from pipelines.resources import ParcoursResource
from pipelines.run_progress import LibraryLogCounter, RunProgress, Write, progress_logger, stage_of_steps
from pipelines.settings import Settings
from pipelines.writer_lock import WRITER_TAG, WriterBusyError, writer_lock
from quality.suites_process import start_ahead as start_suites_process

RUN_JOB = "parcours_run"


@dataclass
class RunOutcome:
    success: bool
    materialized: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files_refused: dict[str, int] = field(default_factory=dict)
    """Files of this run by status, for those not fully accepted (``rejected``, ``partial``)."""
    removed_leftovers: list[str] = field(default_factory=list)
    library_messages: int = 0
    """Warnings and log records of libraries (Dagster, Great Expectations...) held back by a quiet run."""


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _failure_message(event: dg.DagsterEvent) -> str:
    data = event.step_failure_data
    if data is None:
        return event.message or "step failed"
    if data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description
    error = data.error
    # A step that used up its retries fails with RetryRequestedFromPolicy: what went wrong is its cause.
    wrappers = ("DagsterExecutionStepExecutionError", "RetryRequestedFromPolicy")
    while error is not None and error.cause is not None and error.cls_name in wrappers:
        error = error.cause
    if error is None:
        return "step failed"
    message = error.message.strip()  # Dagster's text of an exception already starts with its class
    return message if message.startswith(f"{error.cls_name}:") else f"{error.cls_name}: {message}"


def _check_problem(evaluation: dg.AssetCheckEvaluation) -> str:
    """The check's name, with its ``problem`` metadata when it says what went wrong."""
    name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
    problem = evaluation.metadata.get("problem")
    text = getattr(problem, "value", problem)
    return f"{name}: {text}" if text and text != "none" else name


@contextmanager
def _libraries_held_back(counter: LibraryLogCounter) -> Iterator[None]:
    """Python warnings and library loggers counted into ``counter`` instead of printed, for the run."""
    root = logging.getLogger()
    root.addHandler(counter)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            yield
        counter.count += len(caught)
    finally:
        root.removeHandler(counter)


def execute(
    assets: Sequence[dg.AssetsDefinition],
    resources: Mapping[str, object],
    instance: dg.DagsterInstance | None = None,
    log_level: str = "INFO",
    progress: Write | None = None,
    live: bool = False,
    stage_lines: bool = True,
    selection: dg.AssetSelection | None = None,
    tags: Mapping[str, str] | None = None,
    reporter: RunProgress | None = None,
) -> tuple[dg.ExecuteInProcessResult, int]:
    """Materialise ``assets`` in this process; the result and the count of library messages held back.

    ``log_level`` is Dagster's console logger's (``"OFF"``: no console logger). ``progress`` receives a
    line per stage (``live``: the running step on a line that the next replaces, for terminals; without
    ``stage_lines``, only the steps' warnings and errors); with it, libraries' warnings and log records are
    counted instead of shown. Without a console logger or a report, the run is silent."""
    loggers: dict[str, dg.LoggerDefinition] = {}
    logger_config: dict[str, object] = {}
    if log_level != "OFF":
        loggers["console"] = dg.colored_console_logger
        logger_config["console"] = {"config": {"log_level": log_level}}
    if reporter is None and progress is not None:
        reporter = RunProgress(stage_of_steps(assets), progress, live, stage_lines)
    if reporter is not None:
        loggers["progress"] = progress_logger(reporter)
        logger_config["progress"] = {}
    if not loggers:  # no logger at all would mean Dagster's default console logger, at DEBUG
        loggers["silent"] = dg.LoggerDefinition(lambda _: logging.Logger("parcours.silent", logging.CRITICAL + 1))
        logger_config["silent"] = {}
    job = dg.Definitions(
        assets=assets,
        resources=resources,
        jobs=[dg.define_asset_job(RUN_JOB, selection=selection or dg.AssetSelection.all())],
        loggers=loggers,
    ).resolve_job_def(RUN_JOB)
    counter = LibraryLogCounter()
    with _libraries_held_back(counter) if reporter is not None else _nothing():
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": logger_config},
            tags={WRITER_TAG: "warehouse", **(tags or {})},
        )
    return result, counter.count


def partitions_to_run(settings: Settings, instance: dg.DagsterInstance) -> list[tuple[str, str]]:
    """The ranges of partitions to ingest: those with a landing file the ledger does not know, added to the
    instance's partitions (in sorted order) when new."""
    files = discover_landing_files(settings.landing_dir)
    known: set[tuple[str, str]] = set()
    if settings.warehouse_path.exists():
        with warehouse.connect(settings.warehouse_path, read_only=True) as con:
            if warehouse.table_exists(con, LANDING_FILES_TABLE):
                known = known_files(con)
    wanted = partitions_to_ingest(files, known)
    add_partitions(instance, wanted)
    return contiguous_ranges(instance.get_dynamic_partitions(LANDING_PARTITIONS.name or "landing"), wanted)


def run_pipeline(
    resource: ParcoursResource | None = None,
    instance: dg.DagsterInstance | None = None,
    log_level: str = "INFO",
    progress: Write | None = None,
    live: bool = False,
    stage_lines: bool = True,
) -> RunOutcome:
    """The whole graph in this process (see ``execute`` for the reporting arguments), under the writer lock."""
    resource = resource or ParcoursResource()
    settings = resource.settings()
    try:
        with writer_lock(settings.warehouse_path, "parcours run"):
            # Great Expectations is imported by the suites' process while Dagster starts and the files are
            # ingested: the suites gate the models, and its import alone costs more than the demo's ingestion.
            start_suites_process()
            return _run_locked(resource, settings, instance or dg.DagsterInstance.ephemeral(), log_level,
                               progress, live, stage_lines)  # fmt: skip
    except WriterBusyError as exc:
        return RunOutcome(success=False, failures=[str(exc)])


def _run_locked(
    resource: ParcoursResource,
    settings: Settings,
    instance: dg.DagsterInstance,
    log_level: str,
    progress: Write | None,
    live: bool,
    stage_lines: bool,
) -> RunOutcome:
    removed = [
        str(path)
        for folder in sorted({settings.serving_path.parent, settings.analyst_snapshot.parent})
        for path in warehouse.remove_stale_temporaries(folder)
    ]
    resources = {"parcours": resource}
    assets = [agency_exports, *all_assets()]
    ranges = partitions_to_run(settings, instance)
    reporter = None
    if progress is not None:  # one report for the partitions' runs and the rest: a line per stage
        steps = stage_of_steps(assets)
        if not ranges:
            steps.pop(AGENCY_EXPORTS, None)
        reporter = RunProgress(steps, progress, live, stage_lines)
    results = []
    held_back = 0
    for first, last in ranges:
        if reporter is not None:
            reporter.last_run = False
        result, held = execute(
            assets, resources, instance, log_level, progress, live, stage_lines,
            selection=dg.AssetSelection.assets(AGENCY_EXPORTS), tags=range_tags(first, last), reporter=reporter,
        )  # fmt: skip
        results.append(result)
        held_back += held
        if not result.success:
            if reporter is not None:
                reporter.finish()
            break
    if all(r.success for r in results):
        if reporter is not None:
            reporter.last_run = True
        rest = dg.AssetSelection.all() - dg.AssetSelection.assets(AGENCY_EXPORTS)
        result, held = execute(
            assets, resources, instance, log_level, progress, live, stage_lines, selection=rest, reporter=reporter
        )
        results.append(result)
        held_back += held
    outcome = RunOutcome(success=all(r.success for r in results), removed_leftovers=removed, library_messages=held_back)
    for result in results:
        _collect(result, outcome)
    outcome.success = outcome.success and not outcome.failed_checks
    return outcome


def _collect(result: dg.ExecuteInProcessResult, outcome: RunOutcome) -> None:
    seen: set[tuple[str | None, str]] = set()
    for event in result.get_asset_materialization_events():
        key = event.asset_key
        # A step over a range of partitions reports each partition with the whole batch's metadata: count it once.
        if key is not None and (event.step_key, key.to_user_string()) not in seen:
            seen.add((event.step_key, key.to_user_string()))
            outcome.materialized.append(key.to_user_string())
            if key.to_user_string() in (LANDING_FILES_TABLE, AGENCY_EXPORTS):
                metadata = event.step_materialization_data.materialization.metadata
                for status in ("rejected", "partial"):
                    count = getattr(metadata.get(f"files_{status}"), "value", None)
                    if isinstance(count, int) and count:
                        outcome.files_refused[status] = outcome.files_refused.get(status, 0) + count
    for event in result.get_step_failure_events():
        outcome.failures.append(f"{event.step_key}: {_failure_message(event)}")
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.passed:
            continue
        if evaluation.severity == dg.AssetCheckSeverity.ERROR:
            outcome.failed_checks.append(_check_problem(evaluation))
        else:
            outcome.warnings.append(_check_problem(evaluation))
