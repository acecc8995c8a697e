"""Materialise the whole asset graph in this process, without a UI (``parcours run``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

from pipelines import warehouse
from pipelines.definitions import all_assets
from pipelines.ingest.load import LANDING_FILES_TABLE
from pipelines.resources import ParcoursResource


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


def _failure_message(event: dg.DagsterEvent) -> str:
    data = event.step_failure_data
    if data is None:
        return event.message or "step failed"
    if data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description
    error = data.error
    while error is not None and error.cause is not None and error.cls_name in ("DagsterExecutionStepExecutionError",):
        error = error.cause
    return f"{error.cls_name}: {error.message.strip()}" if error is not None else "step failed"


def _check_problem(evaluation: dg.AssetCheckEvaluation) -> str:
    """The check's name, with its ``problem`` metadata when it says what went wrong."""
    name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
    problem = evaluation.metadata.get("problem")
    text = getattr(problem, "value", problem)
    return f"{name}: {text}" if text and text != "none" else name


def run_pipeline(
    resource: ParcoursResource | None = None,
    instance: dg.DagsterInstance | None = None,
    log_level: str = "INFO",
) -> RunOutcome:
    resource = resource or ParcoursResource()
    settings = resource.settings()
    removed = [
        str(path)
        for folder in sorted({settings.serving_path.parent, settings.analyst_snapshot.parent})
        for path in warehouse.remove_stale_temporaries(folder)
    ]
    result = dg.materialize(
        all_assets(),
        resources={"parcours": resource},
        instance=instance,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )
    outcome = RunOutcome(success=result.success, removed_leftovers=removed)
    for event in result.get_asset_materialization_events():
        key = event.asset_key
        if key is not None:
            outcome.materialized.append(key.to_user_string())
            if key.to_user_string() == LANDING_FILES_TABLE:
                metadata = event.step_materialization_data.materialization.metadata
                for status in ("rejected", "partial"):
                    count = getattr(metadata.get(f"files_{status}"), "value", None)
                    if isinstance(count, int) and count:
                        outcome.files_refused[status] = count
    for event in result.get_step_failure_events():
        outcome.failures.append(f"{event.step_key}: {_failure_message(event)}")
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.passed:
            continue
        if evaluation.severity == dg.AssetCheckSeverity.ERROR:
            outcome.failed_checks.append(_check_problem(evaluation))
        else:
            outcome.warnings.append(_check_problem(evaluation))
    outcome.success = outcome.success and not outcome.failed_checks
    return outcome
