"""Impact studies: a versioned YAML specification, the dataset it defines, and its results.

A study compares care-managed episodes with comparison episodes on one outcome, adjusting
for the covariates it names, with the design it names. Its result is **publishable** only
when every diagnostic passes; otherwise the failing diagnostics are recorded with it.

Outcomes:

* ratio outcomes (``RATIO_OUTCOMES``), estimated as the ATT difference between the treated
  ratio and its counterfactual (``rates.py``): ``unplanned_admissions`` and the negative
  control ``falls`` per 1,000 person-years in the follow-up window (turned into avoided
  hospitalisations and euros), and ``rupture_repair_days``, days without help per service
  interruption;
* ``zarit_change_12m``: change of the carer's Zarit score from baseline to 12 months.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field

from pipelines import warehouse
from pipelines.impact.curves import COMPETING, EVENT, cumulative_incidence_curves
from pipelines.impact.diagnostics import Diagnostics, balance_diagnostics
from pipelines.impact.estimators import EstimationError, estimate_effect, propensity, weights_for
from pipelines.impact.rates import OutcomeResult, did_effect, ratio_effect
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


@dataclass(frozen=True)
class RatioOutcome:
    numerator: str
    exposure: str
    scale: float
    unit: str


RATIO_OUTCOMES = {
    "unplanned_admissions": RatioOutcome("unplanned_admissions", "person_years", 1000.0, "per 1,000 person-years"),
    "falls": RatioOutcome("falls", "person_years", 1000.0, "per 1,000 person-years"),
    "rupture_repair_days": RatioOutcome(
        "rupture_days_without_help", "ruptures_observed", 1.0, "days without help per service interruption"
    ),
}
MEAN_OUTCOMES = {"zarit_change_12m": "Zarit points"}
REPAIR_OBSERVATION_DAYS = 180
"""A service interruption counts in the repair study only when its episode is followed for at
least this long after it starts, so that its repair is seen (fewer than 1 in 100 take longer)."""
MIN_CLUSTERS = 10
"""An agency-level (clustered) interval needs at least this many agencies in each arm."""
SUBGROUP_DIMENSIONS = ("gir_band", "age_band", "agency_model")


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
    outcome: Literal["unplanned_admissions", "rupture_repair_days", "zarit_change_12m"]
    negative_control_outcomes: list[Literal["falls"]] = Field(default_factory=list)
    covariates: list[str]
    design: Literal["match", "ipw", "overlap", "aipw", "did"] = "ipw"
    did_level: Literal["person", "agency"] = "person"
    """For ``did``: resample people, or whole agencies (clustered interval)."""
    estimand: Literal["att", "ate"] = "att"
    bootstrap: int = Field(default=1000, ge=50)
    seed: int = 0
    subgroups: list[Literal["gir_band", "age_band", "agency_model"]] = Field(default_factory=list)
    """Breakdowns estimated one level at a time, for the forest plot (not for ``did``)."""
    subgroup_bootstrap: int = Field(default=200, ge=50)
    diagnostics: Thresholds = Field(default_factory=Thresholds)
    costs: Costs | None = None

    def model_post_init(self, __context: Any) -> None:
        unknown = [c for c in self.covariates if c not in COVARIATES]
        if unknown:
            raise ValueError(f"unknown covariates {unknown}; choose among {sorted(COVARIATES)}")
        if self.design == "did" and self.outcome != "unplanned_admissions":
            raise ValueError("difference-in-differences is available for unplanned_admissions only")
        if self.outcome in RATIO_OUTCOMES and self.design == "match":
            raise ValueError(f"{self.outcome} is a ratio outcome: use design ipw, overlap, aipw or did, not match")
        if self.outcome in RATIO_OUTCOMES and self.estimand != "att":
            raise ValueError(f"{self.outcome} is estimated for the treated (estimand att) only")


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
    select
        admissions.episode_id,
        count(*) as prior_unplanned_admissions,
        count(*) filter (where date_diff('day', admissions.admission_date, base.start_date) > 182)
            as prior_unplanned_early,
        count(*) filter (where date_diff('day', admissions.admission_date, base.start_date) <= 182)
            as prior_unplanned_late
    from fct_hospital_admissions as admissions
    inner join base on admissions.episode_id = base.episode_id
    where admissions.period = 'before' and not admissions.is_planned
    group by admissions.episode_id
),
admissions as (
    select
        admissions.episode_id,
        count(*) as unplanned_admissions,
        min(date_diff('day', base.start_date, admissions.admission_date)) as first_unplanned_day
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
),
repairs as (
    select
        base.episode_id,
        count(*) as ruptures_observed,
        sum(ruptures.days_without_help) as rupture_days_without_help
    from fct_ruptures as ruptures
    inner join base on ruptures.episode_id = base.episode_id
    where ruptures.rupture_type = 'service_interruption' and ruptures.period = 'after'
        and date_diff('day', base.start_date, ruptures.rupture_start) < base.window_days
        and date_diff('day', ruptures.rupture_start, base.follow_up_end) >= $repair_observation_days
    group by base.episode_id
)
select
    base.*,
    coalesce(prior.prior_unplanned_admissions, 0) as prior_unplanned_admissions,
    coalesce(prior.prior_unplanned_early, 0) as prior_unplanned_early,
    coalesce(prior.prior_unplanned_late, 0) as prior_unplanned_late,
    coalesce(admissions.unplanned_admissions, 0) as unplanned_admissions,
    admissions.first_unplanned_day,
    case when date_diff('day', base.start_date, base.death_date) < base.window_days
        then date_diff('day', base.start_date, base.death_date) end as death_day,
    coalesce(falls.falls, 0) as falls,
    coalesce(repairs.ruptures_observed, 0) as ruptures_observed,
    coalesce(repairs.rupture_days_without_help, 0) as rupture_days_without_help,
    base.window_days / 365.25 as person_years,
    load.zarit_baseline,
    load.zarit_change_12m,
    load.zarit_band_baseline,
    load.zarit_band_12m
from base
left join prior on base.episode_id = prior.episode_id
left join admissions on base.episode_id = admissions.episode_id
left join falls on base.episode_id = falls.episode_id
left join repairs on base.episode_id = repairs.episode_id
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
            "repair_observation_days": REPAIR_OBSERVATION_DAYS,
        },
    )
    con.register("_study_base", base)
    try:
        expressions = ", ".join(f"{COVARIATES[c]} as covariate_{c}" for c in spec.covariates)
        return warehouse.query(con, f"select *, {expressions} from _study_base order by episode_id")
    finally:
        con.unregister("_study_base")


@dataclass
class SubgroupResult:
    dimension: str
    value: str
    n_treated: int
    n_comparison: int
    result: OutcomeResult | None
    failing: list[str]


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
    subgroups: list[SubgroupResult] = field(default_factory=list)
    curves: pl.DataFrame | None = None

    @property
    def publishable(self) -> bool:
        return not self.failing


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
    return pl.DataFrame(rows, schema=EVENT_STUDY_SCHEMA)


EVENT_STUDY_SCHEMA = {
    "cohort": pl.String,
    "relative_month": pl.Int64,
    "events": pl.Int64,
    "person_years": pl.Float64,
    "rate_per_1000py": pl.Float64,
}


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


@dataclass
class Estimated:
    result: OutcomeResult
    draws: np.ndarray | None
    diagnostics: Diagnostics


def treatment_and_covariates(spec: StudySpec, frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    t = (frame["cohort"] == spec.treated_cohort).to_numpy().astype(int)
    x = frame.select(f"covariate_{c}" for c in spec.covariates).cast(pl.Float64).to_numpy()
    return t, x


def estimate_outcome(spec: StudySpec, outcome: str, frame: pl.DataFrame, resamples: int) -> Estimated:
    """One outcome's ATT (or ATE) in ``frame`` with the study's design, interval and balance diagnostics."""
    try:
        return _estimate_outcome(spec, outcome, frame, resamples)
    except np.linalg.LinAlgError as exc:
        raise EstimationError(f"{outcome}: a model could not be fitted ({exc})") from exc


def _estimate_outcome(spec: StudySpec, outcome: str, frame: pl.DataFrame, resamples: int) -> Estimated:
    t, x = treatment_and_covariates(spec, frame)
    if outcome in RATIO_OUTCOMES:
        ratio = RATIO_OUTCOMES[outcome]
        numerator = frame[ratio.numerator].cast(pl.Float64).to_numpy()
        exposure = frame[ratio.exposure].cast(pl.Float64).to_numpy()
        result, draws, ps = ratio_effect(
            numerator, exposure, t, x, spec.design, resamples, spec.seed, ratio.scale, ratio.unit
        )
        w = weights_for(t, ps, "overlap" if spec.design == "overlap" else "ipw", "att")
        se = float(np.std(draws, ddof=1))
        diagnostics = balance_diagnostics(x, t, w, ps, result.estimate, se, ratio.scale * numerator / exposure)
        estimated = Estimated(result, draws, diagnostics)
    else:
        y = frame[outcome].cast(pl.Float64).to_numpy()
        if spec.design == "did":
            raise EstimationError("difference-in-differences is estimated by run_did")
        estimate = estimate_effect(y, t, x, spec.design, spec.estimand, resamples, spec.seed)
        treated_mean = float(y[t == 1].mean())
        result = OutcomeResult(
            outcome, estimate.estimate, estimate.ci_low, estimate.ci_high, MEAN_OUTCOMES[outcome],
            treated_mean, treated_mean - estimate.estimate, estimate.variance,
        )  # fmt: skip
        estimated = Estimated(result, None, estimate.diagnostics)
    estimated.result.outcome = outcome
    estimated.diagnostics.covariates = list(spec.covariates)
    return estimated


def size_failures(spec: StudySpec, n_treated: int, n_comparison: int) -> list[str]:
    failing = []
    if n_treated < max(spec.diagnostics.min_treated, 2):
        failing.append(f"fewer than {spec.diagnostics.min_treated} treated episodes")
    if n_comparison < max(spec.diagnostics.min_comparison, 2):
        failing.append(f"fewer than {spec.diagnostics.min_comparison} comparison episodes")
    return failing


def balance_failures(spec: StudySpec, diagnostics: Diagnostics) -> list[str]:
    limits = spec.diagnostics
    failing = []
    if diagnostics.max_abs_smd_after >= limits.max_abs_smd:
        failing.append(f"balance: max |SMD| {diagnostics.max_abs_smd_after:.3f} is not below {limits.max_abs_smd}")
    ratios = [r for r in diagnostics.variance_ratio_after if np.isfinite(r)]
    low, high = limits.variance_ratio
    if any(not low <= r <= high for r in ratios):
        failing.append(f"variance ratios outside {low}-{high}")
    if limits.equipoise_share is not None and diagnostics.equipoise_share < limits.equipoise_share:
        failing.append(f"equipoise share {diagnostics.equipoise_share:.2f} below {limits.equipoise_share}")
    return failing


def study_population(spec: StudySpec, data: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """The episodes the outcome can be measured on, with complete covariates, and the attrition table."""
    attrition = {"episodes_in_population": data.height}
    if spec.outcome == "zarit_change_12m":
        data = data.filter(pl.col("zarit_change_12m").is_not_null())
        attrition["with_12_month_zarit"] = data.height
    elif spec.outcome == "rupture_repair_days":
        data = data.filter(pl.col("ruptures_observed") > 0)
        attrition["with_a_service_interruption_seen_to_repair"] = data.height
    complete = data.drop_nulls([f"covariate_{c}" for c in spec.covariates])
    attrition["with_complete_covariates"] = complete.height
    return complete, attrition


def admission_curves(spec: StudySpec, frame: pl.DataFrame) -> pl.DataFrame:
    """Cumulative incidence of a first unplanned admission, death competing, treated vs weighted comparison."""
    t, x = treatment_and_covariates(spec, frame)
    first = frame["first_unplanned_day"].fill_null(-1).to_numpy()
    death = frame["death_day"].fill_null(-1).to_numpy()
    last = frame["window_days"].to_numpy() - 1
    days = np.where(first >= 0, first, np.where(death >= 0, death, last)).astype(np.int64)
    status = np.where(first >= 0, EVENT, np.where(death >= 0, COMPETING, 0))
    return cumulative_incidence_curves(days, status, t, x, spec.follow_up_days - 1, spec.bootstrap, spec.seed)


def subgroup_result(spec: StudySpec, frame: pl.DataFrame, dimension: str, value: str) -> SubgroupResult:
    part = frame.filter(pl.col(dimension) == value)
    t, _ = treatment_and_covariates(spec, part)
    n_treated, n_comparison = int(t.sum()), int((1 - t).sum())
    failing = size_failures(spec, n_treated, n_comparison)
    if failing:
        return SubgroupResult(dimension, value, n_treated, n_comparison, None, failing)
    try:
        estimated = estimate_outcome(spec, spec.outcome, part, spec.subgroup_bootstrap)
    except EstimationError as exc:
        return SubgroupResult(dimension, value, n_treated, n_comparison, None, [str(exc)])
    failing = balance_failures(spec, estimated.diagnostics)
    return SubgroupResult(dimension, value, n_treated, n_comparison, estimated.result, failing)


def severe_band_figures(spec: StudySpec, frame: pl.DataFrame) -> dict[str, Any]:
    """Share of carers in the severe Zarit band at baseline who left it by 12 months, by cohort."""
    severe = frame.filter(pl.col("zarit_band_baseline") == "61-88")
    left = (severe["zarit_band_12m"] != "61-88").to_numpy()
    treated = (severe["cohort"] == spec.treated_cohort).to_numpy()
    return {
        "treated_leaving_severe_band": float(left[treated].mean()) if treated.any() else None,
        "comparison_leaving_severe_band": float(left[~treated].mean()) if (~treated).any() else None,
        "treated_severe_at_baseline": int(treated.sum()),
        "comparison_severe_at_baseline": int((~treated).sum()),
    }


HALF_YEAR_BEFORE, HALF_YEAR_LAST = 183 / 365.25, 182 / 365.25
"""The placebo splits the 12 months before the index date into days 365-183 and 182-1 before it."""


def run_did(spec: StudySpec, frame: pl.DataFrame, attrition: dict[str, int]) -> StudyResult:
    """Difference-in-differences, with a placebo on the 12 months before as its parallel-trends check."""
    t, x = treatment_and_covariates(spec, frame)
    years = frame["person_years"].to_numpy()
    clusters = frame["agency_id"].to_numpy() if spec.did_level == "agency" else None
    main, draws = did_effect(
        frame["prior_unplanned_admissions"].cast(pl.Float64).to_numpy(),
        frame["unplanned_admissions"].cast(pl.Float64).to_numpy(),
        years, t, clusters, spec.bootstrap, spec.seed,
    )  # fmt: skip
    main.outcome = spec.outcome
    placebo, _ = did_effect(
        frame["prior_unplanned_early"].cast(pl.Float64).to_numpy(),
        frame["prior_unplanned_late"].cast(pl.Float64).to_numpy(),
        np.full(t.shape[0], HALF_YEAR_LAST), t, clusters, spec.bootstrap, spec.seed, before_years=HALF_YEAR_BEFORE,
    )  # fmt: skip
    placebo.outcome = "pre_trend_placebo"
    placebo.unit = "per 1,000 person-years (later minus earlier half-year before the index date)"
    treated_years = float(years[t == 1].sum())
    figures = funder_figures(main, draws, treated_years, treated_years * 12)
    ps = propensity(t, x)
    diagnostics = balance_diagnostics(
        x, t, np.ones(t.shape[0]), ps, main.estimate, float(np.std(draws, ddof=1)),
        1000 * frame["unplanned_admissions"].to_numpy() / years,
    )  # fmt: skip
    diagnostics.covariates = list(spec.covariates)
    diagnostics.attrition = attrition
    # DiD rests on parallel trends, not on balance: the placebo checks them before enrolment.
    failing = []
    if not placebo.ci_low <= 0 <= placebo.ci_high:
        failing.append("pre-trend placebo: the arms' rates already diverged before enrolment")
    if clusters is not None:
        fewest = min(np.unique(clusters[t == arm]).shape[0] for arm in (0, 1))
        if fewest < MIN_CLUSTERS:
            failing.append(f"only {fewest} agencies in an arm: too few for an agency-level interval")
    n_treated, n_comparison = int(t.sum()), int((1 - t).sum())
    return StudyResult(spec, n_treated, n_comparison, attrition, main, [placebo], diagnostics, failing, figures)


def run_study(con: duckdb.DuckDBPyConnection, spec: StudySpec) -> StudyResult:
    frame, attrition = study_population(spec, study_dataset(con, spec))
    t, _ = treatment_and_covariates(spec, frame)
    n_treated, n_comparison = int(t.sum()), int((1 - t).sum())
    # Too small an arm fails the gate, but is still estimated (for the analyst) when it can be.
    too_small = size_failures(spec, n_treated, n_comparison)
    if min(n_treated, n_comparison) < 2:
        return StudyResult(spec, n_treated, n_comparison, attrition, None, [], None, too_small)
    if spec.design == "did":
        did = run_did(spec, frame, attrition)
        did.failing[:0] = too_small
        return did
    try:
        main = estimate_outcome(spec, spec.outcome, frame, spec.bootstrap)
    except EstimationError as exc:
        return StudyResult(spec, n_treated, n_comparison, attrition, None, [], None, [*too_small, str(exc)])
    main.diagnostics.attrition = attrition
    failing = too_small + balance_failures(spec, main.diagnostics)
    negative_controls = []
    for control in spec.negative_control_outcomes:
        result = estimate_outcome(spec, control, frame, spec.bootstrap).result
        negative_controls.append(result)
        if not result.ci_low <= 0 <= result.ci_high:
            failing.append(f"negative control {control}: its interval excludes no effect")
    figures: dict[str, Any] = {}
    curves = None
    if spec.outcome == "unplanned_admissions" and main.draws is not None:
        treated_years = float(frame.filter(pl.col("cohort") == spec.treated_cohort)["person_years"].sum())
        figures = funder_figures(main.result, main.draws, treated_years, treated_years * 12)
        curves = admission_curves(spec, frame)
    elif spec.outcome == "zarit_change_12m":
        figures = severe_band_figures(spec, frame)
    subgroups = [
        subgroup_result(spec, frame, dimension, value)
        for dimension in spec.subgroups
        for value in sorted(frame[dimension].drop_nulls().unique().to_list())
    ]
    return StudyResult(
        spec, n_treated, n_comparison, attrition, main.result, negative_controls, main.diagnostics, failing,
        figures, subgroups, curves,
    )  # fmt: skip


def _outcome_row(result: StudyResult, outcome: OutcomeResult, role: str) -> dict[str, Any]:
    return {
        "outcome": outcome.outcome,
        "role": role,
        "estimate": outcome.estimate,
        "ci_low": outcome.ci_low,
        "ci_high": outcome.ci_high,
        "unit": outcome.unit,
        "treated_value": outcome.treated_value,
        "counterfactual_value": outcome.counterfactual_value,
        "variance_method": outcome.variance,
    }


def result_rows(result: StudyResult) -> pl.DataFrame:
    """The study's results as rows for ``mart_impact_studies`` (aggregates only).

    One ``main`` row, one per negative control (or the DiD's placebo), one per subgroup level
    (``dimension``, ``dimension_value``); the whole study's rows carry ``all``.
    """
    spec = result.spec
    study = {
        "study": spec.name,
        "study_version": spec.version,
        "question": " ".join(spec.question.split()),
        "design": spec.design,
        "estimand": spec.estimand,
    }
    whole = {
        **study,
        "dimension": "all",
        "dimension_value": "all",
        "n_treated": result.n_treated,
        "n_comparison": result.n_comparison,
        "publishable": result.publishable,
        "failing_diagnostics": json.dumps(result.failing),
        "diagnostics": json.dumps(result.diagnostics.as_json() if result.diagnostics else {}),
    }
    rows: list[dict[str, Any]] = []
    if result.main is not None:
        rows.append(
            {**whole, **_outcome_row(result, result.main, "main"), "funder_figures": json.dumps(result.funder_figures)}
        )
    rows += [
        {**whole, **_outcome_row(result, o, "negative_control"), "funder_figures": "{}"}
        for o in result.negative_controls
    ]
    for group in result.subgroups:
        row = {
            **study,
            "dimension": group.dimension,
            "dimension_value": group.value,
            "n_treated": group.n_treated,
            "n_comparison": group.n_comparison,
            "publishable": result.publishable and not group.failing,
            "failing_diagnostics": json.dumps(group.failing),
            "diagnostics": "{}",
            "funder_figures": "{}",
            "outcome": spec.outcome,
            "role": "subgroup",
        }
        if group.result is not None:
            row.update(_outcome_row(result, group.result, "subgroup"))
        rows.append(row)
    if not rows:
        rows = [{**whole, "outcome": spec.outcome, "role": "main"}]
    return pl.DataFrame(rows, infer_schema_length=None)


def curve_rows(result: StudyResult) -> pl.DataFrame:
    """Cumulative-incidence curves for ``mart_study_curves`` (empty when the study has none)."""
    if result.curves is None:
        return pl.DataFrame(schema=CURVE_SCHEMA)
    return result.curves.select(
        pl.lit(result.spec.name).alias("study"), pl.lit(result.spec.version).alias("study_version"), pl.all()
    )


CURVE_SCHEMA = {
    "study": pl.String,
    "study_version": pl.String,
    "curve": pl.String,
    "day": pl.Int64,
    "cumulative_incidence": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "at_risk": pl.Int64,
    "events": pl.Int64,
}
