"""Outcome definitions, pinned by given/expected rows: the five case studies and edge cases."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import sqlglot

from pipelines import warehouse
from pipelines.assets.models import sql_models
from tests.conftest import PipelineRun, run_on
from tests.test_case_studies import readable, stored_id

ROOT = Path(__file__).resolve().parent.parent


def _rows(run: PipelineRun, sql: str) -> list[tuple[Any, ...]]:
    with warehouse.connect(run.settings.warehouse_path, read_only=True) as con:
        return con.execute(sql).fetchall()


def _frame(run: PipelineRun, sql: str) -> pl.DataFrame:
    with warehouse.connect(run.settings.warehouse_path, read_only=True) as con:
        return warehouse.query(con, sql)


# --- the five case studies --------------------------------------------------------------------------


def test_case4_delivery_90_of_420_hours(case_study_run: PipelineRun) -> None:
    rows = _rows(
        case_study_run,
        "select d.period, d.hours_granted, d.hours_delivered, d.hours_unused from fct_service_delivery as d "
        "join int_episode_dimensions as e using (episode_id) "  # the person's other identifiers are the episode's
        f"where e.person_id = '{stored_id('AGR-V2')}' and d.month_start = date '2025-01-01'",
    )
    assert rows == [("after", 420.0, 90.0, 330.0)]
    assert round(90 / 420, 2) == 0.21


def test_case4_interruption_of_three_days_repaired_the_day_after_detection(case_study_run: PipelineRun) -> None:
    rows = _rows(
        case_study_run,
        "select period, days_without_help, days_to_detection, days_to_repair, repaired_within_target, is_open "
        f"from fct_ruptures where rupture_id = '{stored_id('AGR-V2')}'",
    )
    assert rows == [("after", 3, 2, 1, True, False)]


def test_case4_respite_stay_is_planned_and_not_unplanned(case_study_run: PipelineRun) -> None:
    rows = _rows(
        case_study_run,
        "select is_planned, is_avoidable, is_readmission from fct_hospital_admissions "
        f"where event_id = '{stored_id('AGR-V3')}'",
    )
    assert rows == [(True, False, False)]
    totals = _rows(
        case_study_run,
        "select unplanned_admissions, planned_admissions from mart_hospital_outcomes "
        "where dimension = 'all' and cohort = 'care_managed' and period = 'after'",
    )
    assert totals == [(0, 1)]


def test_case4_carer_back_in_work(case_study_run: PipelineRun) -> None:
    rows = _rows(
        case_study_run,
        "select employment_baseline, employment_last, carer_back_in_work from fct_carer_load "
        f"where person_id = '{stored_id('AGR-V2')}'",
    )
    assert rows == [("unpaid_leave", "full_time", True)]


def test_case3_emergency_visit_then_a_week_without_help(case_study_run: PipelineRun) -> None:
    visit = _rows(
        case_study_run,
        f"select period, followed_by_admission from fct_emergency_visits where event_id = '{stored_id('AGP-V3')}'",
    )
    assert visit == [("after", False)]
    rupture = _rows(
        case_study_run,
        "select rupture_type, rupture_start, repaired_date, days_without_help from fct_ruptures "
        f"where rupture_id = '{stored_id('AGP-V3')}'",
    )
    assert rupture == [("discharge_without_support", date(2025, 6, 14), date(2025, 6, 21), 7)]


def test_case2_rupture_detected_late_then_repaired(case_study_run: PipelineRun) -> None:
    rows = _rows(
        case_study_run,
        "select period, days_without_help, days_to_detection, days_to_repair, is_open from fct_ruptures "
        f"where rupture_id = '{stored_id('AGR-V1')}'",
    )
    assert rows == [("before", 133, 112, 21, False)]
    shortfall = _rows(
        case_study_run,
        "select rupture_start, repaired_date from fct_ruptures "
        f"where rupture_type = 'delivery_shortfall' and person_id = '{stored_id('AGR-V1')}'",
    )
    assert shortfall == [(date(2024, 11, 1), date(2025, 3, 1))]  # 4 h of 40 in November, none until March


@pytest.mark.parametrize(("person", "baseline", "change"), [("AGP-B1", 46.0, -12.0), ("AGR-M1", 52.0, -14.0)])
def test_cases_1_and_5_carer_burden_falls(
    case_study_run: PipelineRun, person: str, baseline: float, change: float
) -> None:
    rows = _rows(
        case_study_run,
        f"select zarit_baseline, zarit_change_6m, zarit_band_baseline from fct_carer_load "
        f"where person_id = '{stored_id(person)}'",
    )
    assert rows == [(baseline, change, "41-60")]


def test_comparison_client_readmission_avoidable_and_death(case_study_run: PipelineRun) -> None:
    admissions = _frame(
        case_study_run,
        "select event_id, period, is_avoidable, is_readmission, index_admission_id "
        "from fct_hospital_admissions where cohort = 'comparison' order by event_id",
    )
    ids = {"AGI": ["AGI-V1", "AGI-V2", "AGI-V4", "AGI-V5", "AGI-V6"]}
    assert sorted(readable(admissions.rows(), ids)) == [
        ("AGI-V1", "history", True, False, None),
        ("AGI-V2", "before", True, False, None),
        ("AGI-V4", "before", True, False, None),  # crosses the index date
        ("AGI-V5", "after", True, False, None),
        ("AGI-V6", "after", True, True, "AGI-V5"),  # 13 days after V5's discharge
    ]
    episode = _rows(
        case_study_run,
        "select first_event, death_date, follow_up_days, days_to_first_contact from fct_episodes "
        f"where episode_id = '{stored_id('AGI-E6')}'",
    )
    assert episode == [("death", date(2025, 9, 30), 242, 12)]
    mortality = _rows(
        case_study_run,
        "select deaths, first_event_death, mortality_per_1000py from mart_mortality_placement "
        "where dimension = 'all' and cohort = 'comparison'",
    )
    assert mortality == [(1, 1, pytest.approx(1000 / (242 / 365.25)))]


def test_timeliness_and_caseload(case_study_run: PipelineRun) -> None:
    timeliness: dict[str, int] = dict(
        _rows(case_study_run, "select episode_id, days_to_plan from fct_episodes where days_to_plan is not null")
    )
    assert timeliness[stored_id("AGP-E1")] == 25  # referral 6 January, plan 31 January
    caseload = _rows(
        case_study_run,
        "select active_episodes, fte, episodes_per_fte from mart_caseload "
        "where agency_id = 'AGR' and month_start = date '2025-06-01'",
    )
    assert caseload == [(3.0, 1.8, pytest.approx(3 / 1.8))]


def test_breakdowns_cover_every_dimension(case_study_run: PipelineRun) -> None:
    dimensions = {row[0] for row in _rows(case_study_run, "select distinct dimension from mart_hospital_outcomes")}
    assert dimensions == {"all", "agency", "agency_model", "departement", "region", "gir_band", "age_band"}
    bands: dict[str, int] = dict(
        _rows(
            case_study_run,
            "select dimension_value, sum(persons) from mart_hospital_outcomes "
            "where dimension = 'age_band' and period = 'after' group by all",
        )
    )
    assert bands == {"under 60": 2, "75-84": 2, "85-94": 2}


# --- edge cases -------------------------------------------------------------------------------------

EDGE_FILES = {
    "agencies": "agency_id,model,departement\nAGE,integrated,38\n",
    "persons": "person_id,agency_id,birth_year,sex,departement,lives_alone,benefit,gir_at_intake\n"
    "P1,AGE,1940,F,38,true,APA,2\nP2,AGE,1935,M,38,false,APA,4\n",
    "episodes": "episode_id,person_id,agency_id,cohort,referral_date,start_date,end_date,end_reason,"
    "referral_source,payer,entry_situation\n"
    "E1,P1,AGE,comparison,2025-01-01,2025-01-01,,,hospital,none,crisis\n"
    "E2,P2,AGE,comparison,2025-01-01,2025-01-01,2025-06-30,death,hospital,none,crisis\n",
    "events": "event_id,person_id,event_type,event_date,end_date,planned\n"
    "A,P1,hospital_admission,2025-01-10,2025-01-15,false\n"
    "B,P1,hospital_admission,2025-02-01,2025-02-05,false\n"
    "C,P1,hospital_admission,2025-02-20,2025-02-25,false\n"
    "D,P1,hospital_admission,2025-03-10,2025-03-12,true\n"
    "F,P1,hospital_admission,2025-03-20,2025-03-22,false\n"
    "G,P1,hospital_admission,2025-06-01,2025-06-03,false\n"
    "V1,P1,emergency_visit,2025-05-31,,\n"
    "V2,P1,emergency_visit,2025-08-01,,\n"
    "H,P2,hospital_admission,2025-06-25,2025-07-10,false\n"
    "X,P2,death,2025-06-30,,\n",
}


EDGE_EVENTS = {"AGE": ["A", "B", "C", "D", "F", "G", "V1", "V2", "H", "X"]}


def _edge(event: str) -> str:
    return stored_id(event, "AGE")


@pytest.fixture(scope="module")
def edge_run(tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    root = tmp_path_factory.mktemp("edges")
    for entity, text in EDGE_FILES.items():
        path = root / "landing" / "AGE" / f"AGE_202512_{entity}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    run = run_on(root / "landing", root, "2025-12-31")
    assert run.outcome.success, run.outcome.failures
    return run


def test_readmission_chains_count_once_per_index_stay(edge_run: PipelineRun) -> None:
    rows = _rows(edge_run, "select event_id, is_readmission, index_admission_id from fct_hospital_admissions "
                 f"where person_id = (select person_id from fct_hospital_admissions where event_id = '{_edge('A')}') "
                 "order by admission_date")  # fmt: skip
    assert readable(rows, EDGE_EVENTS) == [
        ("A", False, None),
        ("B", True, "A"),  # 17 days after A
        ("C", True, "B"),  # 15 days after B: a chain, each stay the index of the next
        ("D", False, None),  # planned: never a readmission
        ("F", True, "D"),  # 8 days after a planned stay
        ("G", False, None),  # 71 days later
    ]


def test_emergency_visit_followed_by_an_admission_is_not_counted_alone(edge_run: PipelineRun) -> None:
    rows: dict[str, bool] = dict(
        readable(_rows(edge_run, "select event_id, followed_by_admission from fct_emergency_visits"), EDGE_EVENTS)
    )
    assert rows == {"V1": True, "V2": False}


def test_death_ends_follow_up_and_a_stay_running_past_it_counts_once(edge_run: PipelineRun) -> None:
    rows = _rows(
        edge_run,
        "select follow_up_days, first_event, death_date from fct_episodes where death_date is not null",
    )
    assert rows == [(181, "death", date(2025, 6, 30))]
    stay = _rows(
        edge_run, f"select period, discharge_date from fct_hospital_admissions where event_id = '{_edge('H')}'"
    )
    assert stay == [("after", date(2025, 7, 10))]


def test_open_episodes_run_to_the_cutoff_and_months_add_up(edge_run: PipelineRun) -> None:
    open_days = _rows(edge_run, "select follow_up_days, is_open from fct_episodes where death_date is null")
    assert open_days == [(365, True)]
    monthly = _rows(edge_run, "select sum(person_days) from int_person_months")
    after = _rows(edge_run, "select sum(person_days) from int_person_time where period = 'after'")
    assert monthly == after


def test_every_model_check_passes(edge_run: PipelineRun, case_study_run: PipelineRun, small_run: PipelineRun) -> None:
    for run in (edge_run, case_study_run, small_run):
        assert run.outcome.failed_checks == []
        assert run.outcome.warnings == []


# --- portability and documentation --------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["spark", "trino"])
def test_every_model_transpiles_to_a_distributed_engine(dialect: str) -> None:
    for model in sql_models():
        translated = sqlglot.transpile(
            model.sql, read="duckdb", write=dialect, unsupported_level=sqlglot.ErrorLevel.RAISE
        )
        assert len(translated) == 1, model.name
        assert translated[0].strip(), model.name


def test_every_outcome_table_is_documented() -> None:
    page = (ROOT / "docs" / "outcomes.md").read_text(encoding="utf-8")
    for model in sql_models():
        if model.layer == "marts":
            assert f"`{model.name}`" in page, model.name


def test_monthly_outcomes_add_up_to_the_after_period(case_study_run: PipelineRun) -> None:
    monthly = _rows(
        case_study_run,
        "select cohort, sum(person_days), sum(unplanned_admissions), sum(first_event_death), sum(ruptures_started) "
        "from mart_outcomes_monthly group by cohort order by cohort",
    )
    assert monthly == [("care_managed", 1618, 0, 0, 3), ("comparison", 242, 2, 1, 0)]


# --- several and overlapping episodes: every event and day counted once -----------------------------
#
# X is care-managed by the remote agency AGA from 1 March and is at the same time a comparison client
# of the integrated agency AGB (1 January to 31 August): both agencies send X's admission of 10 April
# (AGB's copy without its diagnosis) and the emergency visit before it, each under its own pseudonym,
# with the same linkage pseudonym L1. Y is a comparison client of AGB from 1 January who starts care
# management there on 1 May while the comparison follow-up goes on; Y dies on 1 October. Z has two
# successive care-managed episodes at AGA and no linkage pseudonym.

OVERLAP_FILES = {
    "AGA": {
        "agencies": "agency_id,model,departement\nAGA,remote,38\n",
        "persons": "person_id,agency_id,birth_year,sex,departement,lives_alone,benefit,gir_at_intake,linkage_id\n"
        "AGA-P1,AGA,1940,F,38,true,APA,2,L1\nAGA-P3,AGA,1938,M,38,false,APA,4,\n",
        "episodes": "episode_id,person_id,agency_id,cohort,referral_date,start_date,end_date,end_reason,"
        "referral_source,payer,entry_situation\n"
        "AGA-E1,AGA-P1,AGA,care_managed,2025-02-20,2025-03-01,,,family_online,family,prevention\n"
        "AGA-E5,AGA-P3,AGA,care_managed,2024-12-20,2025-01-01,2025-02-28,goal_reached,ccas,family,prevention\n"
        "AGA-E6,AGA-P3,AGA,care_managed,2025-05-20,2025-06-01,,,ccas,family,prevention\n",
        "events": "event_id,person_id,event_type,event_date,end_date,planned,diagnosis_group\n"
        "A1,AGA-P1,hospital_admission,2025-04-10,2025-04-15,false,infection\n"
        "A2,AGA-P1,emergency_visit,2025-04-10,,,\n"
        "A3,AGA-P3,hospital_admission,2025-02-10,2025-02-12,false,dehydration\n",
    },
    "AGB": {
        "agencies": "agency_id,model,departement\nAGB,integrated,38\n",
        "persons": "person_id,agency_id,birth_year,sex,departement,lives_alone,benefit,gir_at_intake,linkage_id\n"
        "AGB-Q1,AGB,1940,F,38,true,APA,2,L1\nAGB-Q2,AGB,1932,F,38,true,APA,3,L2\n",
        "episodes": "episode_id,person_id,agency_id,cohort,referral_date,start_date,end_date,end_reason,"
        "referral_source,payer,entry_situation\n"
        "AGB-E2,AGB-Q1,AGB,comparison,2025-01-01,2025-01-01,2025-08-31,goal_reached,hospital,none,rupture\n"
        "AGB-E3,AGB-Q2,AGB,comparison,2025-01-01,2025-01-01,2025-10-01,death,hospital,none,rupture\n"
        "AGB-E4,AGB-Q2,AGB,care_managed,2025-04-20,2025-05-01,2025-10-01,death,hospital,family,crisis\n",
        "events": "event_id,person_id,event_type,event_date,end_date,planned,diagnosis_group\n"
        "B1,AGB-Q1,hospital_admission,2025-04-10,2025-04-15,false,\n"
        "B2,AGB-Q1,emergency_visit,2025-04-10,,,\n"
        "B3,AGB-Q1,hospital_admission,2025-02-01,2025-02-03,false,heart_failure\n"
        "B4,AGB-Q2,hospital_admission,2025-03-01,2025-03-04,false,copd\n"
        "B5,AGB-Q2,hospital_admission,2025-06-10,2025-06-12,false,appendicitis\n"
        "B7,AGB-Q2,death,2025-10-01,,,\n",
    },
}


OVERLAP_EVENTS = {"AGA": ["A1", "A2", "A3"], "AGB": ["B1", "B2", "B3", "B4", "B5", "B7"]}


@pytest.fixture(scope="module")
def overlap_run(tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    root = tmp_path_factory.mktemp("overlaps")
    for agency, files in OVERLAP_FILES.items():
        for entity, text in files.items():
            path = root / "landing" / agency / f"{agency}_202512_{entity}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    run = run_on(root / "landing", root, "2025-12-31")
    assert run.outcome.success, run.outcome.failures
    return run


def test_the_same_admission_sent_by_two_agencies_is_one_admission(overlap_run: PipelineRun) -> None:
    kept = _rows(
        overlap_run,
        "select event_id, diagnosis_group, copies from int_events "
        "where event_type in ('hospital_admission', 'emergency_visit') and event_date = date '2025-04-10' "
        "order by event_id",
    )
    assert sorted(readable(kept, OVERLAP_EVENTS)) == [
        ("A1", "infection", 2),
        ("A2", None, 2),
    ]  # the copy with a diagnosis is kept
    assert _rows(overlap_run, "select count(*) from int_events where event_type = 'hospital_admission'") == [(5,)]


def test_each_episode_sees_its_persons_admissions_and_one_of_them_counts_each(overlap_run: PipelineRun) -> None:
    rows = _rows(
        overlap_run,
        "select event_id, episode_id, period, is_attributed from fct_hospital_admissions "
        "where period <> 'history' order by event_id, period, episode_id",
    )
    names = {stored_id(e): e for e in ("AGA-E1", "AGB-E2", "AGB-E3", "AGB-E4", "AGA-E5", "AGA-E6")}
    assert sorted((e, names[ep], p, a) for e, ep, p, a in readable(rows, OVERLAP_EVENTS)) == [
        ("A1", "AGA-E1", "after", True),  # X care-managed at AGA: care management owns the day
        ("A1", "AGB-E2", "after", False),  # the same day in X's comparison follow-up at AGB
        ("A3", "AGA-E5", "after", True),
        ("A3", "AGA-E6", "before", True),  # the year before Z's second episode
        ("B3", "AGA-E1", "before", True),  # 1 February: before X's care management...
        ("B3", "AGB-E2", "after", True),  # ...and during X's comparison follow-up, which owns it
        ("B4", "AGB-E3", "after", True),
        ("B4", "AGB-E4", "before", True),
        ("B5", "AGB-E3", "after", False),
        ("B5", "AGB-E4", "after", True),  # Y's care management started on 1 May
    ]


def test_federation_totals_count_each_admission_and_day_once(overlap_run: PipelineRun) -> None:
    totals = _rows(
        overlap_run,
        "select cohort, period, unplanned_admissions, person_days, persons from mart_hospital_outcomes "
        "where dimension = 'all' order by period, cohort",
    )
    after = {(c, p): (n, d, k) for c, p, n, d, k in totals if p == "after"}
    # Days after: X 306 (care-managed from 1 March) + 59 (comparison, January-February); Y 154 + 120;
    # Z 59 + 214. Admissions after: A1, B5, A3 care-managed; B3, B4 comparison.
    assert after == {("care_managed", "after"): (3, 306 + 154 + 59 + 214, 3), ("comparison", "after"): (2, 59 + 120, 2)}
    before = {c: n for c, p, n, _, _ in totals if p == "before"}
    assert before == {"care_managed": 3, "comparison": 0}
    visits = _rows(overlap_run, "select count(distinct event_id) from fct_emergency_visits")
    assert visits == [(1,)]


def test_overlapping_comparison_episodes_are_flagged_and_a_death_counts_once(overlap_run: PipelineRun) -> None:
    episodes = _rows(
        overlap_run,
        "select episode_id, other_episodes, concurrent_care_management, care_managed_before, death_date, "
        "death_attributed from fct_episodes",
    )
    names = {stored_id(e): e for e in ("AGA-E1", "AGB-E2", "AGB-E3", "AGB-E4", "AGA-E5", "AGA-E6")}
    flags = {names[e]: (n, c, b, d, a) for e, n, c, b, d, a in episodes}
    assert flags == {
        "AGA-E1": (1, False, False, None, False),
        "AGB-E2": (1, True, False, None, False),  # X is care-managed at AGA meanwhile
        "AGB-E3": (1, True, False, date(2025, 10, 1), False),  # Y is care-managed at AGB meanwhile
        "AGB-E4": (1, False, False, date(2025, 10, 1), True),
        "AGA-E5": (1, False, False, None, False),
        "AGA-E6": (1, False, True, None, False),
    }
    deaths = _rows(
        overlap_run,
        "select cohort, deaths from mart_mortality_placement where dimension = 'all' order by cohort",
    )
    assert deaths == [("care_managed", 1), ("comparison", 0)]
    persons = _rows(
        overlap_run,
        "select agency_model, cohort, persons, episodes from mart_federation_summary order by agency_model, cohort",
    )
    assert persons == [
        ("integrated", "care_managed", 1, 1),
        ("integrated", "comparison", 2, 2),
        ("remote", "care_managed", 2, 3),
    ]


def test_every_model_check_passes_with_overlapping_episodes(overlap_run: PipelineRun) -> None:
    assert overlap_run.outcome.failed_checks == []
    assert overlap_run.outcome.warnings == []
