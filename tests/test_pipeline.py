"""The whole pipeline, end to end, on a small generated federation."""

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines import warehouse
from pipelines.contract import load_contract
from pipelines.definitions import defs
from pipelines.ingest.load import LANDING_FILES_TABLE
from pipelines.synthetic.federation import Federation
from tests.conftest import PipelineRun, run_on

EXPECTED_GRAPH = {
    "stg_agencies": {"raw_agencies"},
    "stg_persons": {"raw_persons"},
    "stg_episodes": {"raw_episodes"},
    "stg_events": {"raw_events"},
    "int_data_cutoff": {"ref_run_parameters", "stg_events", "stg_episodes"},
    "int_person_time": {"int_data_cutoff", "stg_episodes"},
    "fct_hospital_admissions": {"int_person_time", "stg_events"},
    "mart_hospitalisation_rates": {"fct_hospital_admissions", "int_person_time"},
    "mart_federation_summary": {"int_data_cutoff", "stg_agencies", "stg_episodes"},
    "serving_snapshot": {"mart_federation_summary", "mart_hospitalisation_rates"},
    "quality_report": {"raw_landing_files", "raw_quarantine"},
}


def test_definitions_load_and_the_graph_does_not_change_by_accident() -> None:
    graph = defs.resolve_asset_graph()
    edges = {
        key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
        if graph.get(key).parent_keys
    }
    assert edges == EXPECTED_GRAPH
    check_keys = {k.name for k in graph.asset_check_keys}
    assert "every_row_accounted_for" in check_keys


def test_the_run_materialises_every_asset_and_passes_its_checks(small_run: PipelineRun) -> None:
    assert small_run.outcome.success
    assert small_run.outcome.failed_checks == []
    assert set(EXPECTED_GRAPH) <= set(small_run.outcome.materialized)


def test_the_serving_snapshot_holds_marts_only(small_run: PipelineRun) -> None:
    path = small_run.settings.serving_path
    with warehouse.connect(path, read_only=True) as con:
        tables = set(warehouse.list_tables(con))
        metadata = dict(con.execute("select key, value from serving_metadata").fetchall())
    assert tables == {"mart_federation_summary", "mart_hospitalisation_rates", "serving_metadata"}
    assert metadata["contract_version"] == load_contract().version
    assert metadata["data_cutoff"] == "2026-06-30"
    assert not list(path.parent.glob("*.tmp"))


def test_rates_match_the_generators_ground_truth(small_federation: Federation, small_run: PipelineRun) -> None:
    truth = small_federation.ground_truth["sample_att"]["unplanned_admissions"]
    with warehouse.connect(small_run.settings.serving_path, read_only=True) as con:
        row = con.execute(
            "select unplanned_admissions, person_years from mart_hospitalisation_rates "
            "where cohort = 'care_managed' and period = 'after'"
        ).fetchone()
    assert row is not None
    assert row[0] == truth["observed"]
    assert row[1] == pytest.approx(truth["treated_person_years"])


def test_dashboards_can_read_while_the_pipeline_writes(small_run: PipelineRun, tmp_path: Path) -> None:
    # The serving file is separate from the working database, so a reader never blocks the writer.
    with warehouse.connect(small_run.settings.serving_path, read_only=True) as reader:
        with duckdb.connect(str(small_run.settings.warehouse_path)) as writer:
            writer.execute("create or replace table scratch as select 1 as x")
            writer.execute("drop table scratch")
        assert reader.execute("select count(*) from mart_hospitalisation_rates").fetchone() == (4,)


def test_an_empty_landing_folder_fails_with_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / "landing").mkdir()
    run = run_on(tmp_path / "landing", tmp_path)
    assert not run.outcome.success
    assert any("No agency export found" in failure for failure in run.outcome.failures)
    assert not run.settings.serving_path.exists()


def test_a_rerun_replaces_the_snapshot_atomically(small_federation_dir: Path, small_run: PipelineRun) -> None:
    before = small_run.settings.serving_path.stat().st_ino
    again = run_on(small_federation_dir / "landing", small_federation_dir)
    assert again.outcome.success
    assert again.settings.serving_path.stat().st_ino != before  # a new file was renamed into place
    with warehouse.connect(again.settings.warehouse_path, read_only=True) as con:
        files = con.execute(f"select count(distinct relative_path) from {LANDING_FILES_TABLE}").fetchone()
    assert files is not None
    assert files[0] > 0


def test_a_part_of_the_graph_can_be_materialised_alone(small_federation_dir: Path, tmp_path: Path) -> None:
    from pipelines.definitions import all_assets
    from pipelines.resources import ParcoursResource

    resource = ParcoursResource(data_dir=str(tmp_path), landing_dir=str(small_federation_dir / "landing"))
    result = dg.materialize(
        all_assets(),
        resources={"parcours": resource},
        selection=dg.AssetSelection.groups("ingestion", "reference"),
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    assert not resource.settings().serving_path.exists()
