"""The synthetic federation: deterministic, realistic enough, confounded, with known effects, in every world."""

from __future__ import annotations

import json
from datetime import date
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipelines.contract import load_contract
from pipelines.synthetic import truth
from pipelines.synthetic.federation import Federation, FederationSpec, generate_federation
from pipelines.synthetic.scenarios import SCENARIOS, Crisis, mechanisms_for
from tests.conftest import SMALL_SPEC

CONDITIONS = ("heart_failure", "copd", "dementia", "diabetes", "frailty", "brain_injury")


@cache
def world(scenario: str, null: bool = False, persons: int = 1500, seed: int = 3) -> Federation:
    return generate_federation(FederationSpec(agencies=6, persons=persons, seed=seed, scenario=scenario, null=null))


def test_same_seed_same_federation(small_federation: Federation) -> None:
    again = generate_federation(SMALL_SPEC)
    for name, frame in small_federation.tables.items():
        assert_frame_equal(frame, again.tables[name])
    assert again.ground_truth == small_federation.ground_truth
    assert_frame_equal(again.potential_outcomes.events, small_federation.potential_outcomes.events)
    other = generate_federation(FederationSpec(agencies=6, persons=900, months=30, seed=8))
    assert not other.tables["events"].equals(small_federation.tables["events"])


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_world_is_deterministic_and_follows_the_contract(scenario: str) -> None:
    federation = world(scenario, persons=600)
    again = generate_federation(FederationSpec(agencies=6, persons=600, seed=3, scenario=scenario))
    assert again.ground_truth == federation.ground_truth
    contract = load_contract()
    for name, frame in federation.tables.items():
        assert_frame_equal(frame, again.tables[name])
        entity = contract.entity(name)
        assert frame.columns == entity.field_names
        assert frame.select(entity.primary_key).is_duplicated().sum() == 0, name
        for field in entity.fields:
            if field.required:
                assert frame[field.name].null_count() == 0, f"{name}.{field.name}"
            if field.allowed and not field.list_separator:
                assert set(frame[field.name].drop_nulls().unique()) <= set(field.allowed), f"{name}.{field.name}"
    assert federation.ground_truth["scenario"] == scenario
    assert set(federation.ground_truth["estimands"]) >= {
        "unplanned_admissions", "zarit_change_12m", "rupture_repair_days", "emergency_visits",
        *(f"admissions_{group}" for group in truth.NEGATIVE_CONTROL_GROUPS),
    }  # fmt: skip


def test_scenarios_combine_and_unknown_ones_are_refused() -> None:
    assert mechanisms_for("crisis_enrolment+multi_episode").names() == ["crisis_enrolment", "multi_episode"]
    assert mechanisms_for("baseline").names() == []
    with pytest.raises(ValueError, match="unknown scenario"):
        mechanisms_for("crisis")
    with pytest.raises(ValueError, match="baseline cannot be combined"):
        mechanisms_for("baseline+hidden_frailty")
    combined = generate_federation(FederationSpec(agencies=4, persons=300, scenario="hidden_frailty+multi_episode"))
    assert combined.ground_truth["episodes"]["persons_at_two_agencies"] > 0


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_null_world_differs_from_its_twin_only_in_what_care_management_does(scenario: str) -> None:
    effect, null = world(scenario), world(scenario, null=True)
    for name in ("agencies", "care_managers", "persons", "carers", "episodes", "interventions"):
        assert_frame_equal(effect.tables[name], null.tables[name])
    # The same candidate events in both, drawn from the same random numbers; only the flags differ.
    key = ["episode_id", "event_type", "event_date", "planned", "diagnosis_group", "under_control"]
    assert_frame_equal(effect.potential_outcomes.events.select(key), null.potential_outcomes.events.select(key))
    events = null.potential_outcomes.events
    assert (events["under_treatment"] == events["under_control"]).all()
    interruptions = null.potential_outcomes.interruptions
    assert (interruptions["restored_under_treatment"] == interruptions["restored_under_control"]).all()
    zarit = null.potential_outcomes.assessments
    assert (zarit["zarit_under_treatment"] == zarit["zarit_under_control"]).all()
    for outcome, estimand in null.ground_truth["estimands"].items():
        assert estimand["att"] in (0.0, None), outcome
    assert effect.ground_truth["estimands"]["unplanned_admissions"]["att"] < 0
    for name, value in null.ground_truth["design_effects"].items():
        assert value in (1.0, 0.0, False), name


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
    spec = FederationSpec(agencies=4, persons=8000, seed=3)
    tables = generate_federation(spec).tables
    end = spec.end_date
    span = round(spec.months * 365.25 / 12)
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


def test_events_cover_the_history_before_each_episode(small_federation: Federation) -> None:
    tables = small_federation.tables
    history = small_federation.ground_truth["window"]["history_days"]
    assert history == round(SMALL_SPEC.history_months * 365.25 / 12) == 730
    first = tables["events"].group_by("person_id").agg(pl.col("event_date").min().alias("first"))
    joined = tables["episodes"].join(first, on="person_id")
    lead = (joined["start_date"] - joined["first"]).dt.total_days().to_numpy()
    assert lead.max() <= history
    assert (lead > 600).mean() > 0.3  # two years of history are there, not only follow-up


def test_assignment_is_confounded_so_the_naive_comparison_is_biased() -> None:
    # Large enough that the draw of agencies (which ones are integrated) does not decide it.
    truth_ = world("baseline", persons=20_000).ground_truth
    confounding = truth_["confounding"]
    assert confounding["mean_risk_care_managed"] > confounding["mean_risk_comparison"]
    # Care management lowers the rate, but the naive ratio is much closer to 1 or above it,
    # because the care-managed are at higher risk.
    true_ratio = truth_["sample_att"]["unplanned_admissions"]["rate_ratio"]
    assert true_ratio < 0.9
    assert confounding["naive_unplanned_rate_ratio_after_index"] > true_ratio + 0.1


def test_ground_truth_effects_are_consistent() -> None:
    federation = generate_federation(FederationSpec(persons=20_000, seed=5))
    att = federation.ground_truth["sample_att"]
    admissions = att["unplanned_admissions"]
    assert admissions["avoided"] == admissions["counterfactual"] - admissions["observed"]
    # The design ratio applies to preventable admissions; negative controls are never thinned.
    events = federation.potential_outcomes.events.filter(
        (pl.col("event_type") == "hospital_admission") & ~pl.col("planned")
    )
    controls = pl.col("diagnosis_group").is_in(truth.NEGATIVE_CONTROL_GROUPS)
    preventable = events.filter(~controls)
    kept = int(preventable["under_treatment"].sum()) / int(preventable["under_control"].sum())
    assert kept == pytest.approx(0.75, abs=0.03)
    negative = events.filter(controls)
    assert negative.height > 300
    assert (negative["under_treatment"] & negative["under_control"]).all()
    assert att["zarit_12_months"]["difference_points"] == pytest.approx(-8, abs=0.5)
    repair = att["rupture_repair_days"]
    assert repair["observed_mean"] / repair["counterfactual_mean"] == pytest.approx(0.35, abs=0.02)


def test_observed_outcomes_match_the_ground_truth(small_federation: Federation) -> None:
    tables = small_federation.tables
    episodes = tables["episodes"].filter(pl.col("cohort") == "care_managed")
    unplanned = tables["events"].filter((pl.col("event_type") == "hospital_admission") & ~pl.col("planned"))
    after = unplanned.join(episodes, on="person_id").filter(pl.col("event_date") >= pl.col("start_date"))
    assert after.height == small_federation.ground_truth["sample_att"]["unplanned_admissions"]["observed"]


# --- what defines each world ----------------------------------------------------------------------


def _admission_rates_around_the_index(federation: Federation, cohort: str) -> dict[str, float]:
    """Unplanned admissions per person-year 1-91 days and 366-730 days before the index date (first episodes)."""
    tables = federation.tables
    episodes = tables["episodes"].filter(pl.col("cohort") == cohort).select("person_id", "start_date")
    admissions = tables["events"].filter((pl.col("event_type") == "hospital_admission") & ~pl.col("planned"))
    days = admissions.join(episodes, on="person_id").select(
        (pl.col("start_date") - pl.col("event_date")).dt.total_days()
    )
    days_before = days.to_series()
    return {
        "last_3_months": float(days_before.is_between(1, 91).sum()) / (episodes.height * 91 / 365.25),
        "13_to_24_months": float(days_before.is_between(366, 730).sum()) / (episodes.height * 365 / 365.25),
    }


def test_crisis_enrolment_makes_an_ashenfelter_dip() -> None:
    crisis = world("crisis_enrolment", persons=5000)
    treated = _admission_rates_around_the_index(crisis, "care_managed")
    assert treated["last_3_months"] > 2 * treated["13_to_24_months"]
    comparison = _admission_rates_around_the_index(crisis, "comparison")
    assert comparison["last_3_months"] < treated["last_3_months"] / 1.5  # the crisis drove enrolment
    # After the index date, without care management, the treated return to their usual level.
    admissions = truth.unplanned_admissions(crisis.potential_outcomes)
    assert admissions.counterfactual_value is not None
    assert 0.75 < admissions.counterfactual_value / 1000 / treated["13_to_24_months"] < 1.33
    baseline = _admission_rates_around_the_index(world("baseline", persons=5000), "care_managed")
    assert 0.75 < baseline["last_3_months"] / baseline["13_to_24_months"] < 1.33


def _crisis_world(crisis: str, null: bool = False) -> Federation:
    return generate_federation(
        FederationSpec(
            agencies=6, persons=4000, seed=3, scenario="crisis_enrolment", null=null, crisis=Crisis.parse(crisis)
        )
    )


def _treated_rates_before(federation: Federation, event_type: str, days: tuple[int, int]) -> float:
    """Events of one type per person-year in a window of days before the index date, care-managed first episodes."""
    tables = federation.tables
    episodes = tables["episodes"].filter(pl.col("cohort") == "care_managed").select("person_id", "start_date")
    events = tables["events"].filter(pl.col("event_type") == event_type)
    if event_type == "hospital_admission":
        events = events.filter(~pl.col("planned"))
    before = events.join(episodes, on="person_id").select((pl.col("start_date") - pl.col("event_date")).dt.total_days())
    count = before.to_series().is_between(*days).sum()
    return float(count) / (episodes.height * (days[1] - days[0] + 1) / 365.25)


def test_a_crisis_has_a_window_and_a_kind() -> None:
    """A hospital crisis raises admissions in its window; a fall crisis raises falls far more than admissions; a
    crisis starting 150-300 days before the index date reaches months the default one (14-120 days) leaves
    alone."""
    hospital = _crisis_world("hospital:14-120")
    fall = _crisis_world("fall:14-120")
    late = _crisis_world("hospital:150-300")
    recent, usual = (1, 91), (366, 730)
    assert _treated_rates_before(hospital, "hospital_admission", recent) > 2 * _treated_rates_before(
        hospital, "hospital_admission", usual
    )
    falls_rise = _treated_rates_before(fall, "fall", recent) / _treated_rates_before(fall, "fall", usual)
    admissions_rise = _treated_rates_before(fall, "hospital_admission", recent) / _treated_rates_before(
        fall, "hospital_admission", usual
    )
    assert falls_rise > 2
    assert falls_rise > 1.5 * admissions_rise  # admissions only for the injury that starts it
    assert _treated_rates_before(late, "hospital_admission", (200, 290)) > 2 * _treated_rates_before(
        late, "hospital_admission", usual
    )
    # The default crisis (14-120 days before) leaves those months alone.
    assert _treated_rates_before(hospital, "hospital_admission", (200, 290)) < 1.3 * _treated_rates_before(
        hospital, "hospital_admission", usual
    )
    # The same people and assignment whatever the crisis: only the events around it differ.
    assert hospital.tables["episodes"]["cohort"].equals(fall.tables["episodes"]["cohort"])


def test_a_crisis_that_goes_on_after_enrolment_raises_both_potential_outcomes() -> None:
    """Confounding no covariate records: the crisis's excess admissions after the index date happen with or
    without care management, so the untreated rate of the treated rises but the effect stays a thinning."""
    ends = _crisis_world("hospital:14-120", null=True)
    goes_on = _crisis_world("hospital:14-120:4:90", null=True)
    assert truth.unplanned_admissions(ends.potential_outcomes).att == 0
    assert truth.unplanned_admissions(goes_on.potential_outcomes).att == 0
    before = truth.unplanned_admissions(ends.potential_outcomes, 90).counterfactual_value
    after = truth.unplanned_admissions(goes_on.potential_outcomes, 90).counterfactual_value
    assert before is not None
    assert after is not None
    assert after > 1.3 * before


def test_a_crisis_is_written_kind_window_multiplier_and_days_after() -> None:
    assert Crisis.parse("fall:30-240") == Crisis(onset_days=(30, 240), kind="fall")
    assert Crisis.parse("carer:10-20:2.5:60") == Crisis((10, 20), "carer", 2.5, 60)
    assert Crisis.parse(Crisis((10, 20), "carer", 2.5, 60).describe()) == Crisis((10, 20), "carer", 2.5, 60)
    for bad in ("flood:1-2", "hospital:30-10", "hospital", "hospital:1-2:0.5", "hospital:1-2:4:-3"):
        with pytest.raises(ValueError, match="crisis"):
            Crisis.parse(bad)


def _plain_difference_in_differences(federation: Federation) -> float:
    """Care-managed minus comparison change in unplanned admissions per 1,000 person-years, from the
    365 days before the index date to the first 365 days after it (no adjustment, no interval)."""
    tables = federation.tables
    end = pl.min_horizontal(
        pl.col("end_date").fill_null(date(2026, 6, 30)), pl.col("start_date") + pl.duration(days=364)
    )
    episodes = tables["episodes"].with_columns(((end - pl.col("start_date")).dt.total_days() + 1).alias("days"))
    admissions = (
        tables["events"]
        .filter((pl.col("event_type") == "hospital_admission") & ~pl.col("planned"))
        .join(episodes.select("episode_id", "person_id", "start_date", "days"), on="person_id")
        .with_columns((pl.col("event_date") - pl.col("start_date")).dt.total_days().alias("day"))
    )
    after = (
        admissions.filter((pl.col("day") >= 0) & (pl.col("day") < pl.col("days"))).group_by("episode_id").len("after")
    )
    before = admissions.filter(pl.col("day").is_between(-365, -1)).group_by("episode_id").len("before")
    arms = (
        episodes.join(after, on="episode_id", how="left")
        .join(before, on="episode_id", how="left")
        .fill_null(0)
        .group_by("cohort")
        .agg(
            (pl.col("after").sum() / (pl.col("days").sum() / 365.25) - pl.col("before").sum() / pl.len()).alias(
                "change"
            )
        )
    )
    change = dict(arms.iter_rows())
    return 1000 * (change["care_managed"] - change["comparison"])


@pytest.mark.parametrize(("scenario", "low", "high"), [("baseline", -50, 50), ("crisis_enrolment", -200, -80)])
def test_selection_on_a_crisis_fools_a_difference_in_differences(scenario: str, low: float, high: float) -> None:
    """Null worlds, 20 federations: the "before" year is the selection window, so DiD finds an effect that is not there.

    Measured when written: baseline +7 (standard error 16), crisis_enrolment -138 (16), per 1,000 person-years.
    """
    estimates = [
        _plain_difference_in_differences(
            generate_federation(FederationSpec(agencies=6, persons=2000, seed=seed, scenario=scenario, null=True))
        )
        for seed in range(20)
    ]
    assert low < np.mean(estimates) < high


def _poisson_deviance_explained(x: np.ndarray, y: np.ndarray, years: np.ndarray) -> float:
    """1 - deviance / null deviance of a Poisson regression with exposure (IRLS)."""
    x = np.column_stack([np.ones(y.shape[0]), x])
    offset = np.log(years)
    beta = np.zeros(x.shape[1])
    beta[0] = np.log(y.sum() / years.sum())
    for _ in range(50):
        mu = np.exp(x @ beta + offset)
        beta += np.linalg.solve(x.T @ (mu[:, None] * x) + 1e-9 * np.eye(x.shape[1]), x.T @ (y - mu))

    def deviance(mu: np.ndarray) -> float:
        ratio = np.where(y > 0, y / np.where(y > 0, mu, 1), 1)
        return float(2 * np.sum(np.where(y > 0, y * np.log(ratio), 0) - (y - mu)))

    return 1 - deviance(np.exp(x @ beta + offset)) / deviance(years * y.sum() / years.sum())


def _covariates(data: pl.DataFrame) -> np.ndarray:
    """The study covariates of episodes joined with their persons."""
    age = (data["start_date"].dt.year() - data["birth_year"]).to_numpy()
    gir = data["gir_at_intake"].fill_null(0)
    conditions = data["main_conditions"].fill_null("")
    return np.column_stack(
        [age, age < 60, gir.is_in([1, 2]).to_numpy(), gir.is_in([3, 4]).to_numpy(), data["lives_alone"].to_numpy()]
        + [conditions.str.contains(c).to_numpy() for c in CONDITIONS]
    ).astype(float)


def _admissions_and_predictors(federation: Federation) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(covariates, prior-year admissions, admissions in the year after the index date, its person-years)."""
    tables = federation.tables
    episodes = tables["episodes"].join(tables["persons"], on="person_id")
    admissions = tables["events"].filter((pl.col("event_type") == "hospital_admission") & ~pl.col("planned"))
    offsets = admissions.join(episodes.select("person_id", "start_date"), on="person_id").select(
        "person_id", (pl.col("event_date") - pl.col("start_date")).dt.total_days().alias("day")
    )
    after = offsets.filter(pl.col("day").is_between(0, 364)).group_by("person_id").len("after")
    prior = offsets.filter(pl.col("day").is_between(-365, -1)).group_by("person_id").len("prior")
    end = pl.min_horizontal(
        pl.col("end_date").fill_null(date(2026, 6, 30)), pl.col("start_date") + pl.duration(days=364)
    )
    data = (
        episodes.join(after, on="person_id", how="left")
        .join(prior, on="person_id", how="left")
        .with_columns(((end - pl.col("start_date")).dt.total_days() + 1).alias("days"))
    )
    covariates = _covariates(data)
    return (
        covariates,
        np.minimum(data["prior"].fill_null(0).to_numpy(), 5).astype(float),
        data["after"].fill_null(0).to_numpy().astype(float),
        data["days"].to_numpy() / 365.25,
    )


def test_hidden_frailty_is_seen_only_through_prior_use() -> None:
    """Log-linear fits of next year's admissions: prior use predicts them better than every covariate."""
    explained = {}
    for scenario in ("baseline", "hidden_frailty"):
        covariates, prior, y, years = _admissions_and_predictors(world(scenario, null=True, persons=20_000))
        explained[scenario] = (
            _poisson_deviance_explained(covariates, y, years),
            _poisson_deviance_explained(prior[:, None], y, years),
        )
    by_covariates, by_prior = explained["hidden_frailty"]
    assert by_prior > 1.3 * by_covariates
    assert by_covariates < 0.05
    baseline_covariates, baseline_prior = explained["baseline"]
    assert baseline_covariates > baseline_prior


def test_heterogeneous_effects_vary_by_gir_and_living_alone_and_average_to_the_att() -> None:
    federation = world("heterogeneous_effects", persons=20_000)
    po = federation.potential_outcomes
    strongest = (pl.col("gir_band") == "GIR 1-2") & pl.col("lives_alone")
    weakest = pl.col("gir_band").is_in(["GIR 5-6", "unknown"]) & ~pl.col("lives_alone")
    ratio = {}
    for name, group in (("strongest", strongest), ("weakest", weakest)):
        admissions = truth.unplanned_admissions(po, 365, group)
        ratio[name] = admissions.observed / admissions.counterfactual
    assert ratio["strongest"] < 0.7 < 0.9 < ratio["weakest"]
    # The ATT is the person-time weighted average of the subgroups' effects, exactly.
    parts = [truth.unplanned_admissions(po, 365, group) for group in (strongest, ~strongest)]
    whole = truth.unplanned_admissions(po, 365)
    weighted = sum(p.att * p.denominator for p in parts if p.att is not None) / whole.denominator
    assert whole.att == pytest.approx(weighted)
    zarit = [truth.zarit_change_12m(po, group).att for group in (strongest, weakest)]
    assert zarit[0] is not None
    assert zarit[1] is not None
    assert zarit[1] - zarit[0] > 1.5  # living alone lowers the carer effect, GIR 5-6 lowers it more
    baseline = world("baseline", persons=20_000).potential_outcomes
    flat = [truth.unplanned_admissions(baseline, 365, g) for g in (strongest, weakest)]
    assert abs(flat[0].observed / flat[0].counterfactual - flat[1].observed / flat[1].counterfactual) < 0.08


def _main_effects_att_weights_smd(federation: Federation) -> dict[str, float]:
    """|SMD| of non-linear features after ATT weighting with a logistic propensity linear in the covariates."""
    tables = federation.tables
    data = (
        tables["episodes"]
        .join(tables["persons"], on="person_id")
        .join(tables["agencies"].select("agency_id", "model"), on="agency_id")
        .filter(pl.col("model") == "integrated")
    )
    age = (data["start_date"].dt.year() - data["birth_year"]).to_numpy().astype(float)
    gir = data["gir_at_intake"].fill_null(0).to_numpy()
    alone = data["lives_alone"].to_numpy()
    dementia = data["main_conditions"].fill_null("").str.contains("dementia").to_numpy()
    x = np.column_stack([np.ones(data.height), _covariates(data)])
    t = (data["cohort"] == "care_managed").to_numpy().astype(float)
    beta = np.zeros(x.shape[1])
    for _ in range(30):
        p = 1 / (1 + np.exp(-x @ beta))
        beta += np.linalg.solve(x.T @ ((p * (1 - p))[:, None] * x) + 1e-9 * np.eye(x.shape[1]), x.T @ (t - p))
    p = 1 / (1 + np.exp(-x @ beta))
    w = p / (1 - p)
    smd = {}
    for name, feature in {
        "aged_90_in_gir_1_2": (age >= 90) & (gir >= 1) & (gir <= 2),
        "dementia_living_alone": alone & dementia,
    }.items():
        f = feature.astype(float)
        spread = np.sqrt((f[t == 1].var() + f[t == 0].var()) / 2)
        smd[name] = abs(f[t == 1].mean() - np.average(f[t == 0], weights=w[t == 0])) / spread
    return smd


def test_nonlinear_selection_defeats_a_propensity_linear_in_the_covariates() -> None:
    assert max(_main_effects_att_weights_smd(world("nonlinear_selection", persons=20_000)).values()) > 0.25
    assert max(_main_effects_att_weights_smd(world("baseline", persons=20_000)).values()) < 0.1


def test_multi_episode_world_has_overlaps_and_people_at_two_agencies() -> None:
    federation = world("multi_episode", persons=3000)
    tables = federation.tables
    episodes = tables["episodes"].join(tables["persons"].select("person_id", "linkage_id"), on="person_id")
    assert tables["persons"]["linkage_id"].null_count() == 0
    end = pl.col("end_date").fill_null(date(2026, 6, 30))
    pairs = (
        episodes.with_columns(end.alias("end"))
        .join(episodes.with_columns(end.alias("end")), on="linkage_id", suffix="_2")
        .filter(pl.col("episode_id") < pl.col("episode_id_2"))
    )
    overlapping = pairs.filter((pl.col("start_date") <= pl.col("end_2")) & (pl.col("start_date_2") <= pl.col("end")))
    same_agency = overlapping.filter(pl.col("agency_id") == pl.col("agency_id_2"))
    other_agency = overlapping.filter(pl.col("agency_id") != pl.col("agency_id_2"))
    assert same_agency.height > 20
    assert other_agency.height > 50
    assert (other_agency["person_id"] != other_agency["person_id_2"]).all()  # each agency its own pseudonym
    # Nobody is care-managed twice at once: overlaps pair care management with comparison follow-up.
    assert (overlapping["cohort"] != overlapping["cohort_2"]).all()
    successive = pairs.join(
        overlapping.select("episode_id", "episode_id_2"), on=["episode_id", "episode_id_2"], how="anti"
    )
    assert successive.height > 10
    # Both agencies send the same admissions, each under its own pseudonym.
    admissions = (
        tables["events"]
        .filter(pl.col("event_type") == "hospital_admission")
        .join(tables["persons"].select("person_id", "agency_id", "linkage_id"), on="person_id")
    )
    copies = admissions.group_by("linkage_id", "event_date").agg(pl.col("agency_id").n_unique().alias("agencies"))
    assert copies.filter(pl.col("agencies") > 1).height > 50
    summary = federation.ground_truth["episodes"]
    assert summary["persons_at_two_agencies"] == tables["persons"]["linkage_id"].is_duplicated().sum() / 2


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
    truth_file = json.loads((small_federation_dir / "ground_truth.json").read_text())
    assert not (landing / "ground_truth.json").exists()
    assert truth_file["spec"]["seed"] == SMALL_SPEC.seed
    assert truth_file["scenario"] == "baseline"
    assert truth_file["null"] is False


def test_bad_specs_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        generate_federation(FederationSpec(agencies=2))
    with pytest.raises(ValueError, match="at least 3"):
        generate_federation(FederationSpec(months=2))
    with pytest.raises(ValueError, match="at least 12"):
        generate_federation(FederationSpec(history_months=6))
    with pytest.raises(ValueError, match="unknown scenario"):
        generate_federation(FederationSpec(scenario="everything"))


def test_the_command_generates_a_named_world_and_its_null_twin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipelines.cli import main

    args = ["generate", "--agencies", "3", "--persons", "60", "--seed", "4", "--scenario", "multi_episode"]
    assert main([*args, "--out", str(tmp_path / "effect")]) == 0
    assert main([*args, "--out", str(tmp_path / "null"), "--null"]) == 0
    effect = json.loads((tmp_path / "effect" / "ground_truth.json").read_text())
    null = json.loads((tmp_path / "null" / "ground_truth.json").read_text())
    assert (effect["scenario"], effect["null"], null["scenario"], null["null"]) == (
        "multi_episode", False, "multi_episode", True,
    )  # fmt: skip
    assert effect["window"]["history_days"] == 730
    assert "(multi_episode, null)" in capsys.readouterr().err
    assert main(["generate", "--out", str(tmp_path / "bad"), "--scenario", "chaos"]) == 2
    assert "unknown scenario 'chaos'" in capsys.readouterr().err
