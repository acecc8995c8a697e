"""The synthetic federation: deterministic, realistic enough, confounded, with known effects."""

import json
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipelines.contract import load_contract
from pipelines.synthetic.federation import Federation, FederationSpec, generate_federation


def test_same_seed_same_federation(small_federation: Federation) -> None:
    again = generate_federation(FederationSpec(agencies=6, persons=900, months=30, seed=7))
    for name, frame in small_federation.tables.items():
        assert_frame_equal(frame, again.tables[name])
    assert again.ground_truth == small_federation.ground_truth
    other = generate_federation(FederationSpec(agencies=6, persons=900, months=30, seed=8))
    assert not other.tables["events"].equals(small_federation.tables["events"])


def test_tables_follow_the_contract(small_federation: Federation) -> None:
    contract = load_contract()
    for name, frame in small_federation.tables.items():
        entity = contract.entity(name)
        assert frame.columns == entity.field_names
        assert frame.select(entity.primary_key).is_duplicated().sum() == 0, name
        for field in entity.fields:
            if field.required:
                assert frame[field.name].null_count() == 0, f"{name}.{field.name}"
            if field.allowed and not field.list_separator:
                assert set(frame[field.name].drop_nulls().unique()) <= set(field.allowed), f"{name}.{field.name}"


def test_three_agency_models_and_comparison_clients_only_in_integrated_agencies(
    small_federation: Federation,
) -> None:
    agencies = small_federation.tables["agencies"]
    assert set(agencies["model"]) == {"remote", "proximity", "integrated"}
    episodes = small_federation.tables["episodes"].join(agencies, on="agency_id")
    comparison_models = set(episodes.filter(pl.col("cohort") == "comparison")["model"])
    assert comparison_models == {"integrated"}


def test_people_are_mostly_aged_75_to_95() -> None:
    federation = generate_federation(FederationSpec(persons=5000, seed=11))
    persons = federation.tables["persons"].join(federation.tables["episodes"], on="person_id")
    age = persons["start_date"].dt.year() - persons["birth_year"]
    share = float(((age >= 75) & (age <= 95)).to_numpy().mean())
    assert 0.65 <= share <= 0.9
    gir = persons["gir_at_intake"].drop_nulls()
    assert set(gir.unique()) == {1, 2, 3, 4, 5, 6}


def test_caseloads_are_20_to_30_per_full_time_care_manager() -> None:
    federation = generate_federation(FederationSpec(agencies=4, persons=8000, seed=3))
    tables = federation.tables
    end = date(2026, 6, 30)
    window_start = end.replace(year=end.year - 3)
    span = (end - window_start).days - 365
    managed = tables["episodes"].filter(pl.col("cohort") == "care_managed")
    days = managed.select(
        "agency_id", (pl.col("end_date").fill_null(end) - pl.col("start_date")).dt.total_days().alias("days")
    )
    active = days.group_by("agency_id").agg((pl.col("days").sum() / span).alias("active"))
    fte = tables["care_managers"].group_by("agency_id").agg(pl.col("fte").sum())
    caseload = active.join(fte, on="agency_id").with_columns((pl.col("active") / pl.col("fte")).alias("caseload"))
    per_fte = caseload["caseload"].to_numpy()
    assert per_fte.min() >= 20
    assert per_fte.max() <= 30


def test_events_cover_the_year_before_each_episode(small_federation: Federation) -> None:
    tables = small_federation.tables
    first = tables["events"].group_by("person_id").agg(pl.col("event_date").min().alias("first"))
    joined = tables["episodes"].join(first, on="person_id")
    lead = (joined["start_date"] - joined["first"]).dt.total_days().to_numpy()
    assert lead.max() <= 365
    assert (lead > 180).mean() > 0.3  # history is there, not only follow-up


def test_assignment_is_confounded_so_the_naive_comparison_is_biased(small_federation: Federation) -> None:
    truth = small_federation.ground_truth
    confounding = truth["confounding"]
    assert confounding["mean_risk_care_managed"] > confounding["mean_risk_comparison"]
    # Care management lowers the rate (true ratio about 0.75), but the naive ratio is much closer to
    # 1 or above it, because the care-managed are at higher risk.
    true_ratio = truth["sample_att"]["unplanned_admissions"]["rate_ratio"]
    assert true_ratio < 0.9
    assert confounding["naive_unplanned_rate_ratio_after_index"] > true_ratio + 0.1


def test_ground_truth_effects_are_consistent() -> None:
    federation = generate_federation(FederationSpec(persons=20_000, seed=5))
    att = federation.ground_truth["sample_att"]
    admissions = att["unplanned_admissions"]
    assert admissions["avoided"] == admissions["counterfactual"] - admissions["observed"]
    assert admissions["rate_ratio"] == pytest.approx(0.75, abs=0.04)
    assert att["zarit_12_months"]["difference_points"] == pytest.approx(-8, abs=0.5)
    repair = att["rupture_repair_days"]
    assert repair["observed_mean"] / repair["counterfactual_mean"] == pytest.approx(0.35, abs=0.02)


def test_observed_outcomes_match_the_ground_truth(small_federation: Federation) -> None:
    tables = small_federation.tables
    episodes = tables["episodes"].filter(pl.col("cohort") == "care_managed")
    unplanned = tables["events"].filter((pl.col("event_type") == "hospital_admission") & ~pl.col("planned"))
    after = unplanned.join(episodes, on="person_id").filter(pl.col("event_date") >= pl.col("start_date"))
    assert after.height == small_federation.ground_truth["sample_att"]["unplanned_admissions"]["observed"]


def test_zarit_items_add_up_to_the_total(small_federation: Federation) -> None:
    with_items = small_federation.tables["assessments"].filter(pl.col("zarit_items").is_not_null())
    assert with_items.height > 0
    sums = with_items["zarit_items"].str.split("|").list.eval(pl.element().cast(pl.Int64)).list.sum()
    assert (sums.cast(pl.Float64) == with_items["zarit_total"]).all()
    items = np.concatenate(with_items["zarit_items"].str.split("|").to_list()).astype(int)
    assert items.min() >= 0
    assert items.max() <= 4


def test_exports_come_in_the_forms_agencies_send(small_federation_dir: Path) -> None:
    landing = small_federation_dir / "landing"
    suffixes = {p.suffix for p in landing.rglob("*") if p.is_file()}
    assert suffixes == {".csv", ".xlsx", ".parquet"}
    french = next(p for p in landing.glob("AG001/*_service_plans.csv"))
    raw = french.read_bytes()
    assert raw.startswith(b"person_id;month;funder;hours_granted;hours_delivered\r\n")
    first_row = raw.split(b"\r\n")[1].decode("cp1252")
    assert "/" in first_row.split(";")[1]
    assert "," in first_row.split(";")[3]
    utf8 = next(p for p in landing.glob("AG002/*_persons.csv"))
    assert utf8.read_bytes().startswith(b"\xef\xbb\xbfperson_id,")
    truth = json.loads((small_federation_dir / "ground_truth.json").read_text())
    assert not (landing / "ground_truth.json").exists()
    assert truth["spec"]["seed"] == 7


def test_bad_specs_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        generate_federation(FederationSpec(agencies=2))
    with pytest.raises(ValueError, match="at least 15"):
        generate_federation(FederationSpec(months=12))
