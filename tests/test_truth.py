"""The truth functions on a hand-built table of potential outcomes, every figure computed by hand."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from pipelines.synthetic import truth

E1_START, E2_START = date(2025, 1, 1), date(2025, 7, 1)


def _day(start: date, offset: int) -> date:
    return start + timedelta(days=offset)


def _events(rows: list[tuple[str, str, int, bool | None, str | None, bool, bool]]) -> pl.DataFrame:
    starts = {"E1": E1_START, "E2": E2_START}
    return pl.DataFrame(
        [
            {
                "episode_id": episode,
                "event_type": kind,
                "event_date": _day(starts[episode], offset),
                "days_from_index": offset,
                "planned": planned,
                "diagnosis_group": group,
                "under_treatment": treated,
                "under_control": control,
            }
            for episode, kind, offset, planned, group, treated, control in rows
        ]
    )


@pytest.fixture(scope="module")
def po() -> truth.PotentialOutcomes:
    episodes = pl.DataFrame(
        {
            "episode_id": ["E1", "E2"],
            "start_date": [E1_START, E2_START],
            "follow_up_end": [_day(E1_START, 364), _day(E2_START, 89)],
            "follow_up_days": [365, 90],
            "gir_band": ["GIR 1-2", "GIR 3-4"],
            "lives_alone": [True, False],
        }
    )
    events = _events(
        [
            ("E1", "hospital_admission", 10, False, "infection", True, True),
            ("E1", "hospital_admission", 50, True, "respite", True, True),  # planned: never counted
            ("E1", "hospital_admission", 100, False, "heart_failure", False, True),  # avoided
            ("E1", "hospital_admission", 200, False, "appendicitis", True, True),  # a negative control
            ("E1", "emergency_visit", 10, None, None, True, True),  # with the day-10 admission
            ("E1", "emergency_visit", 99, None, None, True, True),  # alone only where day 100 is avoided
            ("E1", "emergency_visit", 300, None, None, False, True),  # avoided
            ("E2", "hospital_admission", 5, False, "other", True, True),
            ("E2", "hospital_admission", 89, False, "infection", False, True),  # avoided, last day
            ("E2", "hospital_admission", 90, False, "infection", True, True),  # after follow-up
        ]
    )
    interruptions = pl.DataFrame(
        {
            "episode_id": ["E1", "E1", "E1", "E2"],
            "event_date": [_day(E1_START, d) for d in (20, 100, 250)] + [_day(E2_START, 10)],
            "days_from_index": [20, 100, 250, 10],
            "restored_under_treatment": [_day(E1_START, d) for d in (25, 120, 255)] + [_day(E2_START, 12)],
            "restored_under_control": [_day(E1_START, d) for d in (50, 500, 300)] + [_day(E2_START, 40)],
        }
    )
    assessments = pl.DataFrame(
        {
            "episode_id": ["E1", "E1", "E1", "E1", "E2"],
            "days_from_index": [0, 182, 360, 370, 0],  # day 370 is after E1's follow-up
            "zarit_under_treatment": [40.0, 35.0, 30.0, 10.0, 50.0],
            "zarit_under_control": [40.0, 41.0, 42.0, 10.0, 50.0],
        }
    )
    return truth.PotentialOutcomes(episodes, events, interruptions, assessments)


def test_unplanned_admissions_count_each_episodes_own_window(po: truth.PotentialOutcomes) -> None:
    result = truth.unplanned_admissions(po, 365)
    # E1: days 10 and 200 happen, day 100 is avoided; E2: day 5 happens, day 89 avoided, day 90 is outside.
    assert (result.observed, result.counterfactual) == (3, 5)
    assert result.denominator == pytest.approx((365 + 90) / 365.25)
    assert result.att == pytest.approx(1000 * (3 - 5) / ((365 + 90) / 365.25))
    assert result.treated_value == pytest.approx(1000 * 3 / ((365 + 90) / 365.25))
    month = truth.unplanned_admissions(po, 30)
    assert (month.observed, month.counterfactual, month.att) == (2, 2, 0.0)
    assert month.denominator == pytest.approx(60 / 365.25)
    whole = truth.unplanned_admissions(po, None)
    assert (whole.observed, whole.counterfactual) == (3, 5)


def test_a_negative_control_has_no_effect(po: truth.PotentialOutcomes) -> None:
    result = truth.admissions_for(po, "appendicitis", 365)
    assert (result.outcome, result.observed, result.counterfactual, result.att) == (
        "admissions_appendicitis", 1, 1, 0.0,
    )  # fmt: skip


def test_subgroups_restrict_the_episodes(po: truth.PotentialOutcomes) -> None:
    result = truth.unplanned_admissions(po, 365, pl.col("lives_alone"))
    assert (result.episodes, result.observed, result.counterfactual) == (1, 2, 3)
    assert result.denominator == pytest.approx(365 / 365.25)


def test_emergency_visits_alone_depend_on_which_admissions_happen(po: truth.PotentialOutcomes) -> None:
    every = truth.emergency_visits(po, 365)
    assert (every.observed, every.counterfactual) == (2, 3)
    alone = truth.emergency_visits_without_admission(po, 365)
    # Treated world: day 99 is alone (day 100 avoided). Control world: day 99 is followed, day 300 alone.
    assert (alone.observed, alone.counterfactual, alone.att) == (1, 1, 0.0)


def test_zarit_change_uses_the_episodes_own_assessments_within_follow_up(po: truth.PotentialOutcomes) -> None:
    result = truth.zarit_change_12m(po)
    # E1: baseline 40 in both worlds; 12 months = day 360 (day 370 is after follow-up): 30 and 42. E2 has no 12 months.
    assert (result.episodes, result.treated_value, result.counterfactual_value, result.att) == (1, -10.0, 2.0, -12.0)


def test_repair_days_count_interruptions_seen_for_180_days(po: truth.PotentialOutcomes) -> None:
    result = truth.rupture_repair_days(po, 365)
    # E1 day 20 (5 or 30 days) and day 100 (20 days, or unrepaired until follow-up ends on day 364: 264);
    # E1 day 250 and E2 day 10 are followed for fewer than 180 days.
    assert (result.denominator, result.observed, result.counterfactual) == (2, 25, 294)
    assert result.att == pytest.approx((25 - 294) / 2)


def test_estimands_name_every_outcome(po: truth.PotentialOutcomes) -> None:
    names = set(truth.estimands(po))
    assert names == {
        "unplanned_admissions", "emergency_visits", "emergency_visits_without_admission", "falls",
        "zarit_change_12m", "rupture_repair_days", *(f"admissions_{g}" for g in truth.NEGATIVE_CONTROL_GROUPS),
    }  # fmt: skip
