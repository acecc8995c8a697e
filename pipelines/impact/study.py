"""Impact studies: a versioned YAML specification, the dataset it defines, and its results.

A study compares care-managed episodes with comparison episodes on one outcome, adjusting
for the covariates it names, with the design it names. Its result is **publishable** only
when every diagnostic passes; otherwise the failing diagnostics are recorded with it.

Outcomes:

* ``unplanned_admissions`` and the negative control ``falls``: events per person-year in the
  follow-up window, estimated as a weighted rate difference (ATT) and turned into avoided
  hospitalisations and euros;
* ``zarit_change_12m``: change of the carer's Zarit score from baseline to 12 months.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field

from pipelines import warehouse
from pipelines.impact.diagnostics import Diagnostics, balance_diagnostics
from pipelines.impact.estimators import (
    EstimationError,
    estimate_effect,
    propensity,
    resample_within_arms,
    weights_for,
)
from pipelines.settings import project_root

COVARIATES = {
    "age": "age_at_start",
    "disabled": "case when age_at_start < 60 then 1 else 0 end",
    "gir_1_2": "case when gir_band = 'GIR 1-2' then 1 else 0 end",
    "gir_3_4": "case when gir_band = 'GIR 3-4' then 1 else 0 end",
    "lives_alone": "case when lives_alone then 1 else 0 end",
    "heart_failure": "case when main_conditions like '%heart_failure%' then 1 else 0 end",
    "copd": "case when main_conditions like '%copd%' then 1 else 0 end",
    "dementia": "case when main_conditions like '%dementia%' then 1 else 0 end",
    "diabetes": "case when main_conditions like '%diabetes%' then 1 else 0 end",
    "frailty": "case when main_conditions like '%frailty%' then 1 else 0 end",
    "brain_injury": "case when main_conditions like '%brain_injury%' then 1 else 0 end",
    "prior_unplanned_admissions": "prior_unplanned_admissions",
    "zarit_baseline": "zarit_baseline",
}
"""Covariates a study may name, each a SQL expression over the study base (fixed here, never from a file)."""

RATE_OUTCOMES = {"unplanned_admissions", "falls"}
MIN_CLUSTERS = 10
"""An agency-level (clustered) interval needs at least this many agencies in each arm."""


class Population(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_age: int = 0
    max_age: int = 130
    agency_models: list[Literal["remote", "proximity", "integrated"]] | None = None


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_abs_smd: float = 0.1
    variance_ratio: tuple[float, float] = (0.5, 2.0)
    min_treated: int = 11
    min_comparison: int = 11
    equipoise_share: float | None = None


class Costs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    care_management_months: Literal["follow_up"] = "follow_up"


class StudySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    question: str
    population: Population = Field(default_factory=Population)
    treated_cohort: Literal["care_managed"] = "care_managed"
    comparison_cohort: Literal["comparison"] = "comparison"
    follow_up_days: int = Field(default=365, ge=30)
    outcome: Literal["unplanned_admissions", "zarit_change_12m"]
    negative_control_outcomes: list[Literal["falls"]] = Field(default_factory=list)
    covariates: list[str]
    design: Literal["match", "ipw", "overlap", "aipw", "did"] = "ipw"
    did_level: Literal["person", "agency"] = "person"
    """For ``did``: resample people, or whole agencies (clustered interval)."""
    estimand: Literal["att", "ate"] = "att"
    bootstrap: int = Field(default=1000, ge=50)
    seed: int = 0
    diagnostics: Thresholds = Field(default_factory=Thresholds)
    costs: Costs | None = None

    def model_post_init(self, __context: Any) -> None:
        unknown = [c for c in self.covariates if c not in COVARIATES]
        if unknown:
            raise ValueError(f"unknown covariates {unknown}; choose among {sorted(COVARIATES)}")


def studies_dir() -> Path:
    return project_root() / "data" / "studies"


def load_study(path: Path) -> StudySpec:
    with path.open(encoding="utf-8") as handle:
        return StudySpec.model_validate(yaml.safe_load(handle))


def load_studies(folder: Path | None = None) -> list[StudySpec]:
    return [load_study(p) for p in sorted((folder or studies_dir()).glob("*.yaml"))]


STUDY_BASE = """
with base as (
    select
        episodes.*,
        persons.main_conditions,
        least(episodes.follow_up_days, $follow_up_days) as window_days
    from fct_episodes as episodes
    left join stg_persons as persons on episodes.person_id = persons.person_id
    where episodes.cohort in ('care_managed', 'comparison')
        and episodes.age_at_start between $min_age and $max_age
        and (len($agency_models) = 0 or list_contains($agency_models, episodes.agency_model))
),
prior as (
    select episode_id, sum(case when is_planned then 0 else 1 end) as prior_unplanned_admissions
    from fct_hospital_admissions where period = 'before' group by episode_id
),
admissions as (
    select admissions.episode_id, count(*) as unplanned_admissions
    from fct_hospital_admissions as admissions
    inner join base on admissions.episode_id = base.episode_id
    where admissions.period = 'after' and not admissions.is_planned
        and date_diff('day', base.start_date, admissions.admission_date) < base.window_days
    group by admissions.episode_id
),
falls as (
    select base.episode_id, count(*) as falls
    from stg_events as events
    inner join base on events.person_id = base.person_id
    where events.event_type = 'fall' and events.event_date >= base.start_date
        and date_diff('day', base.start_date, events.event_date) < base.window_days
    group by base.episode_id
)
select
    base.*,
    coalesce(prior.prior_unplanned_admissions, 0) as prior_unplanned_admissions,
    coalesce(admissions.unplanned_admissions, 0) as unplanned_admissions,
    coalesce(falls.falls, 0) as falls,
    base.window_days / 365.25 as person_years,
    load.zarit_baseline,
    load.zarit_change_12m,
    load.zarit_band_baseline,
    load.zarit_band_12m
from base
left join prior on base.episode_id = prior.episode_id
left join admissions on base.episode_id = admissions.episode_id
left join falls on base.episode_id = falls.episode_id
left join fct_carer_load as load on base.episode_id = load.episode_id
"""


def study_dataset(con: duckdb.DuckDBPyConnection, spec: StudySpec) -> pl.DataFrame:
    """One row per episode of the study population, with its covariates and outcomes."""
    base = warehouse.query(
        con,
        STUDY_BASE,
        {
            "follow_up_days": spec.follow_up_days,
            "min_age": spec.population.min_age,
            "max_age": spec.population.max_age,
            "agency_models": list(spec.population.agency_models or []),
        },
    )
    con.register("_study_base", base)
    try:
        expressions = ", ".join(f"{COVARIATES[c]} as covariate_{c}" for c in spec.covariates)
        return warehouse.query(con, f"select *, {expressions} from _study_base order by episode_id")
    finally:
        con.unregister("_study_base")


@dataclass
class OutcomeResult:
    outcome: str
    estimate: float
    ci_low: float
    ci_high: float
    unit: str
    treated_value: float
    counterfactual_value: float
    variance: str


@dataclass
class StudyResult:
    spec: StudySpec
    n_treated: int
    n_comparison: int
    attrition: dict[str, int]
    main: OutcomeResult | None
    negative_controls: list[OutcomeResult]
    diagnostics: Diagnostics | None
    failing: list[str]
    funder_figures: dict[str, Any] = field(default_factory=dict)

    @property
    def publishable(self) -> bool:
        return not self.failing


def weighted_rate_difference(
    events: np.ndarray, years: np.ndarray, t: np.ndarray, w: np.ndarray
) -> tuple[float, float]:
    """(treated rate, counterfactual rate) per person-year, the counterfactual from weighted controls."""
    treated = t == 1
    rate_treated = events[treated].sum() / years[treated].sum()
    rate_counterfactual = (w * events)[~treated].sum() / (w * years)[~treated].sum()
    return float(rate_treated), float(rate_counterfactual)


def rate_effect(
    events: np.ndarray, years: np.ndarray, t: np.ndarray, x: np.ndarray, method: str, resamples: int, seed: int
) -> tuple[OutcomeResult, np.ndarray, np.ndarray]:
    """ATT rate difference per 1,000 person-years, with a bootstrap refitting the propensity model.

    Returns the result, the bootstrap differences and the propensity scores of the data.
    """
    ps = propensity(t, x)
    w = weights_for(t, ps, "overlap" if method == "overlap" else "ipw", "att")
    treated_rate, counterfactual = weighted_rate_difference(events, years, t, w)
    rng = np.random.default_rng(seed)
    draws = np.empty((resamples, 2))
    for b in range(resamples):
        rows = resample_within_arms(rng, t)
        ps_b = propensity(t[rows], x[rows])
        w_b = weights_for(t[rows], ps_b, "overlap" if method == "overlap" else "ipw", "att")
        draws[b] = weighted_rate_difference(events[rows], years[rows], t[rows], w_b)
    differences = 1000 * (draws[:, 0] - draws[:, 1])
    low, high = np.percentile(differences, [2.5, 97.5])
    result = OutcomeResult(
        outcome="",
        estimate=1000 * (treated_rate - counterfactual),
        ci_low=float(low),
        ci_high=float(high),
        unit="per 1,000 person-years",
        treated_value=1000 * treated_rate,
        counterfactual_value=1000 * counterfactual,
        variance=f"bootstrap refitting the propensity model ({resamples} resamples within arms, seed {seed})",
    )
    return result, differences, ps


def did_effect(
    before: np.ndarray,
    after: np.ndarray,
    after_years: np.ndarray,
    t: np.ndarray,
    clusters: np.ndarray,
    resamples: int,
    seed: int,
) -> tuple[OutcomeResult, np.ndarray]:
    """Difference-in-differences of rates per 1,000 person-years, 12 months before vs after the index date.

    (treated after - treated before) - (comparison after - comparison before), each a ratio of
    sums. The interval resamples people within arms, or whole clusters (agencies) when
    ``clusters`` has several values per arm.
    """
    before_years = np.full(t.shape[0], 365 / 365.25)

    def point(rows: np.ndarray) -> float:
        tt = t[rows]
        rate = {}
        for arm in (0, 1):
            m = rows[tt == arm]
            rate[(arm, "before")] = before[m].sum() / before_years[m].sum()
            rate[(arm, "after")] = after[m].sum() / after_years[m].sum()
        return 1000 * ((rate[(1, "after")] - rate[(1, "before")]) - (rate[(0, "after")] - rate[(0, "before")]))

    everyone = np.arange(t.shape[0])
    estimate = point(everyone)
    rng = np.random.default_rng(seed)
    draws = np.empty(resamples)
    groups = {arm: np.unique(clusters[t == arm]) for arm in (0, 1)}
    by_cluster = {(arm, c): np.flatnonzero((t == arm) & (clusters == c)) for arm in (0, 1) for c in groups[arm]}
    for b in range(resamples):
        picked = []
        for arm in (0, 1):
            chosen = rng.choice(groups[arm], groups[arm].shape[0])
            picked += [by_cluster[(arm, c)] for c in chosen]
        draws[b] = point(np.concatenate(picked))
    low, high = np.percentile(draws, [2.5, 97.5])
    treated = t == 1
    treated_after = 1000 * after[treated].sum() / after_years[treated].sum()
    level = "agencies" if np.unique(clusters).shape[0] < t.shape[0] else "people"
    result = OutcomeResult(
        outcome="",
        estimate=float(estimate),
        ci_low=float(low),
        ci_high=float(high),
        unit="per 1,000 person-years (difference-in-differences)",
        treated_value=float(treated_after),
        counterfactual_value=float(treated_after - estimate),
        variance=f"bootstrap resampling {level} within arms ({resamples} resamples, seed {seed})",
    )
    return result, draws


def event_study(con: duckdb.DuckDBPyConnection, spec: StudySpec) -> pl.DataFrame:
    """Unplanned admission rates by month relative to the index date (-12 to +11) and cohort."""
    data = study_dataset(con, spec)
    admissions = warehouse.query(
        con,
        "select episode_id, admission_date from fct_hospital_admissions where not is_planned",
    ).join(data.select("episode_id", "start_date", "cohort", "follow_up_days"), on="episode_id")
    months = np.arange(-12, 12)
    month_days = 365.25 / 12
    rows = []
    offsets = (admissions["admission_date"] - admissions["start_date"]).dt.total_days().to_numpy()
    relative = np.floor(offsets / month_days).astype(int)
    for cohort in (spec.treated_cohort, spec.comparison_cohort):
        follow = data.filter(pl.col("cohort") == cohort)["follow_up_days"].to_numpy().astype(float)
        in_cohort = (admissions["cohort"] == cohort).to_numpy()
        for m in months:
            if m < 0:
                days = follow.shape[0] * month_days
            else:
                days = float(np.clip(follow - m * month_days, 0, month_days).sum())
            events = int(((relative == m) & in_cohort).sum())
            rows.append({"cohort": cohort, "relative_month": int(m), "events": events, "person_years": days / 365.25,
                         "rate_per_1000py": 1000 * events / (days / 365.25) if days else None})  # fmt: skip
    return pl.DataFrame(rows)


def unit_costs() -> pl.DataFrame:
    return pl.read_csv(project_root() / "data" / "reference" / "unit_costs.csv")


def funder_figures(
    result: OutcomeResult, draws: np.ndarray, treated_years: float, treated_months: float
) -> dict[str, Any]:
    """Avoided hospitalisations and net savings in low, central and high cost scenarios."""
    costs = unit_costs()
    avoided = -result.estimate / 1000 * treated_years
    avoided_draws = -draws / 1000 * treated_years
    scenarios: dict[str, Any] = {}
    for scenario in ("low", "central", "high"):
        stay = float(costs.filter((pl.col("item") == "hospital_stay") & (pl.col("scenario") == scenario))["euros"][0])
        monthly = float(
            costs.filter((pl.col("item") == "care_management") & (pl.col("scenario") == scenario))["euros"][0]
        )
        net = avoided_draws * stay - treated_months * monthly
        scenarios[scenario] = {
            "cost_per_stay": stay,
            "care_management_per_month": monthly,
            "net_savings": avoided * stay - treated_months * monthly,
            "net_savings_ci": [float(np.percentile(net, 2.5)), float(np.percentile(net, 97.5))],
            "probability_net_savings_positive": float((net > 0).mean()),
        }
    return {
        "avoided_unplanned_hospitalisations": avoided,
        "avoided_ci": [float(np.percentile(avoided_draws, 2.5)), float(np.percentile(avoided_draws, 97.5))],
        "treated_person_years": treated_years,
        "scenarios": scenarios,
    }


def run_study(con: duckdb.DuckDBPyConnection, spec: StudySpec) -> StudyResult:
    data = study_dataset(con, spec)
    attrition = {"episodes_in_population": data.height}
    if spec.outcome == "zarit_change_12m":
        data = data.filter(pl.col("zarit_change_12m").is_not_null())
        attrition["with_12_month_zarit"] = data.height
    covariate_columns = [f"covariate_{c}" for c in spec.covariates]
    complete = data.drop_nulls(covariate_columns)
    attrition["with_complete_covariates"] = complete.height
    t = (complete["cohort"] == spec.treated_cohort).to_numpy().astype(int)
    x = complete.select(covariate_columns).cast(pl.Float64).to_numpy()
    n_treated, n_comparison = int(t.sum()), int((1 - t).sum())
    failing: list[str] = []
    if n_treated < spec.diagnostics.min_treated:
        failing.append(f"fewer than {spec.diagnostics.min_treated} treated episodes")
    if n_comparison < spec.diagnostics.min_comparison:
        failing.append(f"fewer than {spec.diagnostics.min_comparison} comparison episodes")
    if failing or n_treated < 2 or n_comparison < 2:
        return StudyResult(spec, n_treated, n_comparison, attrition, None, [], None, failing or ["too few episodes"])

    negative_controls: list[OutcomeResult] = []
    figures: dict[str, Any] = {}
    if spec.design == "did" and spec.outcome == "unplanned_admissions":
        years = complete["person_years"].to_numpy()
        clusters = (
            complete["agency_id"].to_numpy() if spec.did_level == "agency" else np.arange(complete.height).astype(str)
        )
        main, draws = did_effect(
            complete["prior_unplanned_admissions"].to_numpy().astype(float),
            complete["unplanned_admissions"].to_numpy().astype(float),
            years, t, clusters, spec.bootstrap, spec.seed,
        )  # fmt: skip
        main.outcome = spec.outcome
        treated_years = float(years[t == 1].sum())
        figures = funder_figures(main, draws, treated_years, treated_years * 12)
        ps = propensity(t, x)
        diagnostics = balance_diagnostics(
            x, t, np.ones(t.shape[0]), ps, main.estimate, float(np.std(draws, ddof=1)),
            1000 * complete["unplanned_admissions"].to_numpy(),
        )  # fmt: skip
        diagnostics.covariates = list(spec.covariates)
        diagnostics.attrition = attrition
        # DiD rests on parallel trends, not on balance; a clustered interval needs enough clusters.
        if spec.did_level == "agency":
            fewest = min(np.unique(clusters[t == arm]).shape[0] for arm in (0, 1))
            if fewest < MIN_CLUSTERS:
                failing.append(f"only {fewest} agencies in an arm: too few for an agency-level interval")
        return StudyResult(spec, n_treated, n_comparison, attrition, main, [], diagnostics, failing, figures)
    if spec.outcome in RATE_OUTCOMES:
        years = complete["person_years"].to_numpy()
        main, draws, ps = rate_effect(
            complete[spec.outcome].to_numpy().astype(float), years, t, x, spec.design, spec.bootstrap, spec.seed
        )
        main.outcome = spec.outcome
        w = weights_for(t, ps, "overlap" if spec.design == "overlap" else "ipw", "att")
        se = float(np.std(draws, ddof=1))
        diagnostics = balance_diagnostics(x, t, w, ps, main.estimate, se, 1000 * complete[spec.outcome].to_numpy())
        treated_years = float(years[t == 1].sum())
        figures = funder_figures(main, draws, treated_years, treated_years * 12)
        for control in spec.negative_control_outcomes:
            result, _, _ = rate_effect(
                complete[control].to_numpy().astype(float), years, t, x, spec.design, spec.bootstrap, spec.seed
            )
            result.outcome = control
            negative_controls.append(result)
            if not result.ci_low <= 0 <= result.ci_high:
                failing.append(f"negative control {control}: its interval excludes no effect")
    else:
        if spec.design == "did":
            return StudyResult(spec, n_treated, n_comparison, attrition, None, [], None,
                               ["difference-in-differences is available for unplanned_admissions only"])  # fmt: skip
        y = complete[spec.outcome].to_numpy().astype(float)
        try:
            estimate = estimate_effect(y, t, x, spec.design, spec.estimand, spec.bootstrap, spec.seed)
        except EstimationError as exc:
            return StudyResult(spec, n_treated, n_comparison, attrition, None, [], None, [str(exc)])
        diagnostics = estimate.diagnostics
        main = OutcomeResult(
            spec.outcome, estimate.estimate, estimate.ci_low, estimate.ci_high, "Zarit points",
            float(y[t == 1].mean()), float(y[t == 1].mean() - estimate.estimate), estimate.variance,
        )  # fmt: skip
        severe = complete.filter(pl.col("zarit_band_baseline") == "61-88")
        left = (severe["zarit_band_12m"] != "61-88").to_numpy()
        is_treated = (severe["cohort"] == spec.treated_cohort).to_numpy()
        figures = {
            "treated_leaving_severe_band": float(left[is_treated].mean()) if is_treated.any() else None,
            "comparison_leaving_severe_band": float(left[~is_treated].mean()) if (~is_treated).any() else None,
        }
    diagnostics.covariates = list(spec.covariates)
    diagnostics.attrition = attrition
    limits = spec.diagnostics
    if diagnostics.max_abs_smd_after >= limits.max_abs_smd:
        failing.append(f"balance: max |SMD| {diagnostics.max_abs_smd_after:.3f} is not below {limits.max_abs_smd}")
    ratios = [r for r in diagnostics.variance_ratio_after if np.isfinite(r)]
    low, high = limits.variance_ratio
    if any(not low <= r <= high for r in ratios):
        failing.append(f"variance ratios outside {low}-{high}")
    if limits.equipoise_share is not None and diagnostics.equipoise_share < limits.equipoise_share:
        failing.append(f"equipoise share {diagnostics.equipoise_share:.2f} below {limits.equipoise_share}")
    return StudyResult(spec, n_treated, n_comparison, attrition, main, negative_controls, diagnostics, failing, figures)


def result_rows(result: StudyResult) -> pl.DataFrame:
    """The study's results as rows for ``mart_impact_studies`` (aggregates only)."""
    import json

    outcomes = ([result.main] if result.main else []) + result.negative_controls
    rows = [
        {
            "study": result.spec.name,
            "study_version": result.spec.version,
            "question": " ".join(result.spec.question.split()),
            "design": result.spec.design,
            "estimand": result.spec.estimand,
            "outcome": o.outcome,
            "role": "main" if o is result.main else "negative_control",
            "estimate": o.estimate,
            "ci_low": o.ci_low,
            "ci_high": o.ci_high,
            "unit": o.unit,
            "treated_value": o.treated_value,
            "counterfactual_value": o.counterfactual_value,
            "variance_method": o.variance,
            "n_treated": result.n_treated,
            "n_comparison": result.n_comparison,
            "publishable": result.publishable,
            "failing_diagnostics": json.dumps(result.failing),
            "diagnostics": json.dumps(result.diagnostics.as_json() if result.diagnostics else {}),
            "funder_figures": json.dumps(result.funder_figures if o is result.main else {}),
        }
        for o in outcomes
    ]
    if not rows:
        rows = [{"study": result.spec.name, "study_version": result.spec.version, "publishable": False,
                 "failing_diagnostics": json.dumps(result.failing)}]  # fmt: skip
    return pl.DataFrame(rows)
