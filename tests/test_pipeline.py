"""The whole pipeline, end to end, on a small generated federation."""

import json
import os
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines import warehouse
from pipelines.assets.studies import STUDY_MARTS
from pipelines.contract import load_contract
from pipelines.definitions import defs
from pipelines.ingest.load import LANDING_FILES_TABLE
from pipelines.publication.release import FUNDER_SCHEMAS, RELEASE_TABLES, SHOWN_CELLS, funder_path
from pipelines.synthetic.federation import Federation
from tests.conftest import PipelineRun, run_on

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"


def current_graph() -> dict[str, list[str]]:
    graph = defs.resolve_asset_graph()
    return {
        key.to_user_string(): sorted(p.to_user_string() for p in graph.get(key).parent_keys)
        for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    }


def test_definitions_load_and_the_graph_does_not_change_by_accident() -> None:
    """The asset graph equals its snapshot; after an intended change, rerun with PARCOURS_UPDATE_SNAPSHOTS=1."""
    graph = current_graph()
    if os.environ.get("PARCOURS_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(graph, indent=2) + "\n")
    assert graph == json.loads(SNAPSHOT.read_text())
    checks = {k.name for k in defs.resolve_asset_graph().asset_check_keys}
    assert {"every_row_accounted_for", "contract_suite", "every_breakdown_adds_up"} <= checks


def test_model_dependencies_come_from_the_sql() -> None:
    graph = current_graph()
    assert graph["mart_hospitalisation_rates"] == ["mart_hospital_outcomes"]
    assert graph["fct_hospital_admissions"] == [
        "int_attributed_time",
        "int_episode_dimensions",
        "int_events",
        "int_outcome_parameters",
        "int_person_time",
        "ref_avoidable_conditions",
        "ref_negative_control_conditions",
    ]
    assert graph["serving_snapshot"] == sorted(k for k in graph if k.startswith(("mart_", "ops_")))
    assert graph["ops_contract_checks"] == ["raw_landing_files"]  # quality_results is written with the ledger


def test_the_run_materialises_every_asset_and_passes_its_checks(small_run: PipelineRun) -> None:
    assert small_run.outcome.success
    assert small_run.outcome.failed_checks == []
    assert set(current_graph()) <= set(small_run.outcome.materialized)
    assert small_run.outcome.warnings == []


def test_the_serving_snapshot_holds_marts_and_release_tables_only(small_run: PipelineRun) -> None:
    path = small_run.settings.serving_path
    with warehouse.connect(path, read_only=True) as con:
        tables = set(warehouse.list_tables(con))
        metadata = dict(con.execute("select key, value from serving_metadata").fetchall())
    marts = {t for t in current_graph() if t.startswith(("mart_", "ops_"))}
    # SHOWN_CELLS: what each audience was shown, by noise key, for the next releases' audit (analysts only).
    assert tables == marts | set(STUDY_MARTS) | set(RELEASE_TABLES) | {SHOWN_CELLS, "serving_metadata"}
    assert metadata["contract_version"] == load_contract().version
    assert metadata["data_cutoff"] == "2026-06-30"
    assert not list(path.parent.rglob("*.tmp"))
    with warehouse.connect(funder_path(path), read_only=True) as con:
        assert set(warehouse.list_tables(con)) == set(FUNDER_SCHEMAS) | {"serving_metadata"}


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
