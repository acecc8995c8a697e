"""A run's report: one line per stage, in order, with counts and time; library noise counted, not shown."""

import logging
import re
import warnings

import dagster as dg
import pytest

from pipelines.assets import all_assets
from pipelines.run import execute
from pipelines.run_progress import STAGES, StageTally, describe, stage_of_steps


@dg.asset(group_name="ingestion")
def raw_things() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"dagster/row_count": 1234})


@dg.asset(group_name="reference")
def ref_codes() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"dagster/row_count": 6})


@dg.multi_asset(
    specs=[
        dg.AssetSpec("stg_things", group_name="staging", deps=["raw_things", "ref_codes"]),
        dg.AssetSpec("mart_things", group_name="marts", deps=["stg_things"]),
    ],
    check_specs=[dg.AssetCheckSpec("adds_up", asset="mart_things")],
)
def models_step() -> object:
    yield dg.MaterializeResult(asset_key="stg_things", metadata={"dagster/row_count": 1234})
    yield dg.MaterializeResult(asset_key="mart_things", metadata={"dagster/row_count": 10})
    yield dg.AssetCheckResult(asset_key="mart_things", check_name="adds_up", passed=True)


@dg.asset(group_name="studies", deps=["mart_things"])
def study_things(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    context.log.warning("study_things: not publishable (too few comparison episodes)")
    context.log.info("an INFO line nobody needs in a quiet run")
    return dg.MaterializeResult(metadata={"publishable": False})


@dg.asset(group_name="marts", deps=["study_things"])
def mart_studies() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"dagster/row_count": 1})


def _snapshot(fail: bool) -> dg.AssetsDefinition:
    @dg.asset(name="snapshot", group_name="serving", deps=["mart_studies"])
    def _publish() -> dg.MaterializeResult:
        warnings.warn("a library's deprecation notice", DeprecationWarning, stacklevel=1)
        logging.getLogger("great_expectations.core").warning("a library's own log line")
        if fail:
            raise dg.Failure(description="publication refused: the auditor recovered a cell")
        return dg.MaterializeResult(metadata={"audiences": 3, "cells_released": 120, "cells_hidden": 7})

    return _publish


TOY = [raw_things, ref_codes, models_step, study_things, mart_studies]


def _run(assets: list[dg.AssetsDefinition]) -> tuple[list[str], dg.ExecuteInProcessResult, int]:
    lines: list[str] = []
    result, held_back = execute(assets, {}, dg.DagsterInstance.ephemeral(), "OFF", lines.append)
    return lines, result, held_back


def test_a_mart_built_from_the_studies_belongs_to_the_studies_stage() -> None:
    stages = stage_of_steps([*TOY, _snapshot(fail=False)])
    assert stages == {
        "raw_things": "ingest",
        "ref_codes": "ingest",
        "models_step": "models",
        "study_things": "studies",
        "mart_studies": "studies",
        "snapshot": "publication",
    }


def test_the_pipelines_stages_never_go_back_along_a_dependency() -> None:
    assets = all_assets()
    stages = stage_of_steps(assets)
    step_of_key = {key: a.node_def.name for a in assets for key in a.keys}
    assert stages["raw_tables"] == "ingest"
    assert stages["sql_models"] == "models"
    assert stages["serving_snapshot"] == "publication"
    assert {s for step, s in stages.items() if step.startswith("study_")} == {"studies"}
    for definition in assets:
        for deps in definition.asset_deps.values():
            for dep in deps:
                if dep in step_of_key:
                    upstream, here = stages[step_of_key[dep]], stages[definition.node_def.name]
                    assert STAGES.index(upstream) <= STAGES.index(here), (dep, definition.node_def.name)


def test_a_run_writes_one_line_per_stage_in_order_with_counts() -> None:
    lines, result, held_back = _run([*TOY, _snapshot(fail=False)])
    assert result.success
    stage_lines = [line.split()[0] for line in lines if not line.strip().startswith("warning")]
    assert stage_lines == ["ingest", "models", "studies", "publication"]
    text = "\n".join(lines)
    assert "2 tables, 1,240 rows" in text  # ingest: the raw table and the reference table
    assert "2 tables, 1,244 rows, 1 check passed" in text
    assert "1 study, 0 publishable" in text
    assert "3 audiences, 120 cells released, 7 hidden" in text
    assert all(re.match(r"^  [a-z]+ +\d+\.\d s   \S", line) for line in lines if "warning" not in line)
    # The step's own warning is shown; INFO lines, Dagster's banners and the libraries' noise are not.
    assert "warning: study_things: not publishable (too few comparison episodes)" in text
    assert "INFO" not in text
    assert "nobody needs" not in text
    assert "dagster" not in text.lower()
    assert "library" not in text
    assert held_back == 2


def test_a_range_of_partitions_materialised_in_one_step_is_counted_once() -> None:
    # A single run over 12 partitions reports one event per partition, each with the batch's metadata.
    tally = StageTally()
    for _ in range(12):
        tally.add_materialisation("agency_exports", {"files_accepted": 80, "files_partial": 4}, "agency_exports")
    tally.add_materialisation("raw_persons", {"dagster/row_count": 3000}, "ingest_raw")
    tally.add_materialisation("raw_persons", {"dagster/row_count": 3000}, "another_step")
    assert (tally.assets, tally.rows) == (3, 6000)
    assert "84 files (80 accepted, 4 partial)" in describe("ingest", tally)


def test_a_failed_step_is_said_and_the_stages_after_it_are_not_run() -> None:
    assets = [*TOY, _snapshot(fail=True)]
    lines, result, _ = _run(assets)
    assert not result.success
    assert lines[-1].split()[0] == "publication"
    assert "failed" in lines[-1]
    lines, result, _ = _run(
        [raw_things, ref_codes, _failing_models(), study_things, mart_studies, _snapshot(fail=False)]
    )
    assert not result.success
    by_stage = {line.split()[0]: line for line in lines if not line.strip().startswith("warning")}
    assert "failed" in by_stage["models"]
    assert by_stage["studies"].split()[1:] == ["not", "run"]
    assert by_stage["publication"].split()[1:] == ["not", "run"]


def _failing_models() -> dg.AssetsDefinition:
    @dg.multi_asset(
        name="models_step",
        specs=[
            dg.AssetSpec("stg_things", group_name="staging", deps=["raw_things", "ref_codes"]),
            dg.AssetSpec("mart_things", group_name="marts", deps=["stg_things"]),
        ],
    )
    def _models() -> object:
        raise dg.Failure(description="a model does not parse")
        yield  # a generator, as the real models step is

    return _models


@pytest.mark.parametrize("level", ["INFO", "OFF"])
def test_without_a_progress_report_libraries_are_not_held_back(level: str) -> None:
    result, held_back = execute([raw_things], {}, dg.DagsterInstance.ephemeral(), level)
    assert result.success
    assert held_back == 0
