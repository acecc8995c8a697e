"""The five case studies of DOMAIN.md, hand-computed (see fixtures/case_studies/README.md)."""

from typing import Any

import polars as pl
import pytest

from pipelines import warehouse
from pipelines.ingest.pseudonyms import DEMO_KEY, pseudonym
from tests.conftest import PipelineRun

AFTER_DAYS = {"AGP-E1": 356, "AGR-E2": 304, "AGP-E3": 332, "AGR-E4": 351, "AGR-E5": 275, "AGI-E6": 242}


def stored_id(agency_identifier: str, agency: str | None = None) -> str:
    """What the warehouse holds for an agency's identifier (re-keyed under the demo key, scoped by the
    agency: the identifier's prefix unless named)."""
    return pseudonym(DEMO_KEY, agency or agency_identifier.split("-")[0], agency_identifier)


def readable(rows: list[tuple[Any, ...]], agency_identifiers: dict[str, list[str]]) -> list[tuple[Any, ...]]:
    """Rows with each stored pseudonym written back as the agency's identifier it came from
    (``agency_identifiers``: agency -> its identifiers), so that expected rows read as the fixtures."""
    names = {stored_id(i, agency): i for agency, ids in agency_identifiers.items() for i in ids}
    return [tuple(names.get(v, v) if isinstance(v, str) else v for v in row) for row in rows]


def _table(run: PipelineRun, sql: str) -> pl.DataFrame:
    with warehouse.connect(run.settings.warehouse_path, read_only=True) as con:
        return warehouse.query(con, sql)


def test_cutoff_is_the_analysts_setting(case_study_run: PipelineRun) -> None:
    cutoff = _table(case_study_run, "select data_cutoff from int_data_cutoff")["data_cutoff"][0]
    assert cutoff.isoformat() == "2025-12-31"


def test_person_time_is_365_days_before_and_runs_to_end_or_cutoff_after(case_study_run: PipelineRun) -> None:
    time = _table(case_study_run, "select episode_id, period, person_days from int_person_time")
    before = dict(time.filter(pl.col("period") == "before").select("episode_id", "person_days").iter_rows())
    after = dict(time.filter(pl.col("period") == "after").select("episode_id", "person_days").iter_rows())
    assert before == {stored_id(e): 365 for e in AFTER_DAYS}
    # Death on 2025-09-30 ends AGI-E6; the others are open at the cut-off.
    assert after == {stored_id(e): days for e, days in AFTER_DAYS.items()}


def test_admissions_are_placed_in_their_period(case_study_run: PipelineRun) -> None:
    admissions = _table(
        case_study_run,
        "select event_id, period, is_planned from fct_hospital_admissions order by event_id",
    )
    ids = {"AGI": ["AGI-V1", "AGI-V2", "AGI-V4", "AGI-V5", "AGI-V6"], "AGR": ["AGR-V3"]}
    assert sorted(readable(admissions.rows(), ids)) == [
        ("AGI-V1", "history", False),  # 2023-12-01: 428 days before the index date
        ("AGI-V2", "before", False),
        ("AGI-V4", "before", False),  # stay crosses the index date: dated by its admission
        ("AGI-V5", "after", False),
        ("AGI-V6", "after", False),  # readmission 13 days after discharge
        ("AGR-V3", "after", True),  # case 4: the planned respite stay
    ]


def test_hospitalisation_rates_by_cohort_and_period(case_study_run: PipelineRun) -> None:
    rates = _table(case_study_run, "select * from mart_hospitalisation_rates order by cohort, period")
    by_key = {(r["cohort"], r["period"]): r for r in rates.iter_rows(named=True)}
    managed_after = by_key[("care_managed", "after")]
    assert managed_after["person_days"] == 356 + 304 + 332 + 351 + 275
    assert managed_after["unplanned_admissions"] == 0
    assert managed_after["planned_admissions"] == 1  # the respite stay is not an unplanned hospitalisation
    assert by_key[("care_managed", "before")]["person_days"] == 5 * 365
    comparison_after = by_key[("comparison", "after")]
    assert comparison_after["unplanned_admissions"] == 2
    assert comparison_after["unplanned_rate_per_1000py"] == pytest.approx(2 / (242 / 365.25) * 1000)
    assert by_key[("comparison", "before")]["unplanned_admissions"] == 2


def test_case_two_rupture_and_case_four_delivery_are_in_the_raw_data(case_study_run: PipelineRun) -> None:
    interruption = _table(
        case_study_run,
        f"select event_date, detected_date, end_date from raw_events where event_id = '{stored_id('AGR-V1')}'",
    ).row(0)
    assert (interruption[1] - interruption[0]).days == 112  # noticed months later
    delivery = _table(
        case_study_run,
        "select hours_granted, hours_delivered from raw_service_plans "
        f"where person_id = '{stored_id('AGR-V2')}' and month = date '2025-01-01'",
    ).row(0)
    assert delivery == (420.0, 90.0)
    assert round(delivery[1] / delivery[0], 2) == 0.21
