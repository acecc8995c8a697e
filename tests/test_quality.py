"""Contract suites and the quality report: failures are counted, values never shown."""

from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd

from pipelines import warehouse
from pipelines.contract import load_contract
from pipelines.definitions import defs
from pipelines.resources import ParcoursResource
from pipelines.sensors import landing_folder_sensor
from quality.report import render_report
from quality.suites import BLOCKING, CATEGORIES, expectation_specs, validate_frames
from tests.conftest import PipelineRun


def test_every_suite_covers_the_three_categories() -> None:
    for entity in load_contract().entities.values():
        categories = {category for category, _, _ in expectation_specs(entity, date(2026, 1, 1))}
        assert categories <= set(CATEGORIES)
        assert {"conformance", "completeness"} <= categories
    assert {"conformance", "completeness"} == BLOCKING


def test_failures_are_counted_without_values() -> None:
    contract = load_contract()
    frame = pd.DataFrame(
        {
            "agency_id": ["A1", "A1", "SECRET-AGENCY"],
            "model": ["remote", "teleport", "proximity"],
            "departement": ["75", "75", "2A"],
        }
    )
    outcomes = validate_frames({"agencies": frame}, contract, date(2026, 1, 1))
    failed = {(o.expectation, o.column): o for o in outcomes if not o.success}
    assert failed[("expect_column_values_to_be_in_set", "model")].unexpected_count == 1
    assert failed[("expect_column_values_to_be_unique", "agency_id")].category == "completeness"
    assert "teleport" not in repr(outcomes)
    assert "SECRET" not in repr(outcomes)


def test_the_pipeline_records_suites_and_writes_a_report(small_run: PipelineRun) -> None:
    with warehouse.connect(small_run.settings.warehouse_path, read_only=True) as con:
        results = warehouse.query(con, "select * from quality_results")
        report = render_report(con)
    assert results["success"].all()
    assert set(results["entity"]) == set(load_contract().entities)
    assert "| AG001 | accepted |" in report
    written = (small_run.settings.data_dir / "reports" / "quality-report.md").read_text()
    assert written.startswith("# Parcours quality report")


def test_suites_run_as_blocking_asset_checks() -> None:
    checks = {(k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys}
    for entity in load_contract().entities:
        assert (f"raw_{entity}", "contract_suite") in checks


def test_sensor_requests_a_run_when_files_change(small_federation_dir: Path) -> None:
    resource = ParcoursResource(data_dir=str(small_federation_dir))
    context = dg.build_sensor_context(resources={"parcours": resource})
    first = landing_folder_sensor(context)
    assert isinstance(first, dg.SensorResult)
    assert first.run_requests
    assert first.cursor
    unchanged = landing_folder_sensor(dg.build_sensor_context(cursor=first.cursor, resources={"parcours": resource}))
    assert isinstance(unchanged, dg.SensorResult)
    assert not unchanged.run_requests
