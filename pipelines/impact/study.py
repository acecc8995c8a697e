"""Impact studies: run a study's design on its dataset, pass it through the gate, and write its rows.

A study compares care-managed episodes with comparison episodes on one outcome, adjusting for
the covariates it names, with the design it names (``spec.py``); the dataset comes from
``dataset.py``. Designs:

* ``dml``: cross-fitted doubly robust (AIPW) estimation with flexible nuisance learners and an
  influence-function interval (``crossfit.py``); subgroups average the same scores within each
  level (no refit);
* ``did``: the doubly robust difference-in-differences with a pre-period, a washout, a placebo
  outside the selection window and a dip check (``did.py``);
* ``match``, ``ipw``, ``overlap``, ``aipw``: the parametric designs with bootstrap intervals
  (``estimators.py``, ``rates.py``), for small studies.

Negative controls are estimated with the main outcome's design; their estimates calibrate the
main interval (``calibration.py``). Every diagnostic becomes a check and one gate decides
(``gate.py``): the verdict is stored with each row.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from pipelines import warehouse
from pipelines.engines import Engine, as_engine
from pipelines.impact.calibration import (
    CalibratedInterval,
    SystematicError,
    calibrate_difference,
    calibrate_interval,
    composite_systematic_error,
    difference_from_ratio,
    fit_systematic_error,
    with_spread_prior,
)
from pipelines.impact.cells import Cells, group_cells
from pipelines.impact.crossfit import (
    CrossFitted,
    EffectOnTreated,
    Learners,
    Loss,
    crossfit_both,
    doubly_robust_att,
    log_ratio_difference_se,
    proportional_outcome,
)
from pipelines.impact.curves import COMPETING, EVENT, cumulative_incidence_curves
from pipelines.impact.dataset import (
    MONTH_DAYS,
    REPAIR_OBSERVATION_DAYS,
    Admissions,
    admissions,
    admissions_after_by_month,
    outcome_key,
    study_dataset,
    study_population,
)
from pipelines.impact.diagnostics import Diagnostics, balance_diagnostics
from pipelines.impact.did import MONTH_YEARS, Change, did_design, did_on_changes, window_counts
from pipelines.impact.estimators import Z95, EstimationError, estimate_effect, weights_for
from pipelines.impact.gate import (
    Check,
    Effect,
    Verdict,
    at_least,
    at_most,
    balance_checks,
    calibration_checks,
    decide,
    failure,
    finite_json,
    interval_includes_zero,
    size_checks,
)
from pipelines.impact.rates import OutcomeResult, ratio_effect
from pipelines.impact.spec import (
    COVARIATES,
    MEAN_OUTCOMES,
    PER_PERSON_YEARS,
    RATIO_OUTCOMES,
    SUBGROUP_DIMENSIONS,
    RatioOutcome,
    StudySpec,
    load_studies,
)
from pipelines.impact.threads import single_threaded
from pipelines.settings import project_root

MIN_CLUSTERS = 10
"""An agency-level (clustered) interval needs at least this many agencies in each arm."""
COMPOSITE = "negative_controls_composite"
"""Every negative control's admissions together: the outcome the mean systematic error is estimated on."""
COMPOSITE_REASON = (
    "Every negative control's admissions together, estimated with the same design: the mean systematic "
    "error the calibration removes (the controls one by one give its spread)."
)

__all__ = [
    "COVARIATES",
    "RATIO_OUTCOMES",
    "REPAIR_OBSERVATION_DAYS",
    "SUBGROUP_DIMENSIONS",
    "StudyResult",
    "StudySpec",
    "load_studies",
    "result_rows",
    "run_study",
    "study_dataset",
]


@dataclass
class SubgroupResult:
    dimension: str
    value: str
    n_treated: int
    n_comparison: int
    result: OutcomeResult | None
    verdict: Verdict
    calibrated: CalibratedInterval | None = None
    treated_person_years: float | None = None
    """For a rate: the person-years its treated value rests on (the treated episodes kept by the weights).
    With it the publication layer counts the subgroup's treated events, as for the whole study, and shows
    its rate and calibrated interval when they rest on at least 11 events."""


@dataclass
class StudyResult:
    spec: StudySpec
    n_treated: int
    n_comparison: int
    attrition: dict[str, int]
    main: OutcomeResult | None
    negative_controls: list[OutcomeResult]
    diagnostics: Diagnostics | None
    verdict: Verdict
    funder_figures: dict[str, Any] = field(default_factory=dict)
    subgroups: list[SubgroupResult] = field(default_factory=list)
    curves: pl.DataFrame | None = None
    placebo: OutcomeResult | None = None
    calibration: dict[str, Any] | None = None
    design: dict[str, Any] = field(default_factory=dict)
    """What the design did: learners, weights (trimmed, truncated), windows, dip checks."""
    retained_treated: list[str] = field(default_factory=list)
    """Episode ids of the treated episodes the estimate is about (after trimming): for validation only."""
    event_study: pl.DataFrame | None = None
    """A difference-in-differences study's admission rates by month relative to the index date and cohort
    (``event_study_rows``), from the study's own frame: set when its descriptive figures are (``run_study``)."""

    @property
    def publishable(self) -> bool:
        return self.verdict.publishable

    @property
    def failing(self) -> list[str]:
        return [c.name for c in self.verdict.failed]


def unit_costs() -> pl.DataFrame:
    return pl.read_csv(project_root() / "data" / "reference" / "unit_costs.csv")


def funder_figures(
    effect: Effect, treated_years: float, treated_months: float, costs: pl.DataFrame | None = None
) -> dict[str, Any]:
    """Avoided hospitalisations and net savings in low, central and high cost scenarios, from the published
    estimate and interval (normal approximation: the probability that net savings are positive is
    P(N(net, se_net) > 0)). ``costs``: the reference unit costs unless an analyst gives others (same columns
    as ``data/reference/unit_costs.csv``)."""
    from scipy import stats  # late, as in ``calibration``: not at every pipeline's start

    costs = unit_costs() if costs is None else costs
    se = effect.standard_error
    avoided = -effect.estimate / 1000 * treated_years
    avoided_se = se / 1000 * treated_years
    scenarios: dict[str, Any] = {}
    for scenario in ("low", "central", "high"):
        stay = float(costs.filter((pl.col("item") == "hospital_stay") & (pl.col("scenario") == scenario))["euros"][0])
        monthly = float(
            costs.filter((pl.col("item") == "care_management") & (pl.col("scenario") == scenario))["euros"][0]
        )
        net = avoided * stay - treated_months * monthly
        net_se = avoided_se * stay
        scenarios[scenario] = {
            "cost_per_stay": stay,
            "care_management_per_month": monthly,
            "net_savings": net,
            "net_savings_ci": [net - Z95 * net_se, net + Z95 * net_se],
            "probability_net_savings_positive": float(stats.norm.sf(0, net, net_se)) if net_se > 0 else float(net > 0),
        }
    return {
        "avoided_unplanned_hospitalisations": avoided,
        "avoided_ci": [-effect.ci_high / 1000 * treated_years, -effect.ci_low / 1000 * treated_years],
        "treated_person_years": treated_years,
        "calibrated": effect.uncalibrated is not None,
        "scenarios": scenarios,
    }


def treatment(spec: StudySpec, frame: pl.DataFrame) -> np.ndarray:
    """1 for each treated row, 0 for each comparison row (where the covariates are not needed: at a million
    rows they are a copy of 200 MB)."""
    return (frame["cohort"] == spec.treated_cohort).to_numpy().astype(int)


def covariate_matrix(spec: StudySpec, frame: pl.DataFrame) -> np.ndarray:
    """The study's covariates as a rows x covariates matrix of 64-bit floats, in column-major order (as Polars
    hands a frame over, so every sum over it runs in the same order). Filled column by column: a frame of them
    cast to floats and then converted held two copies of the matrix at once (200 MB each at a million rows)."""
    columns = [f"covariate_{c}" for c in spec.covariates]
    if not columns:
        return frame.select(columns).cast(pl.Float64).to_numpy()
    x = np.empty((frame.height, len(columns)), order="F")
    for i, column in enumerate(columns):
        x[:, i] = frame[column].cast(pl.Float64).to_numpy()
    return x


def treatment_and_covariates(spec: StudySpec, frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return treatment(spec, frame), covariate_matrix(spec, frame)


def _ratio_for(outcome: str) -> RatioOutcome | None:
    if outcome in RATIO_OUTCOMES:
        return RATIO_OUTCOMES[outcome]
    if outcome not in MEAN_OUTCOMES:
        return RatioOutcome(outcome, "person_years", PER_PERSON_YEARS.scale, PER_PERSON_YEARS.unit)
    return None


def _total_and_exposure(outcome: str, frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, float, str]:
    ratio = _ratio_for(outcome)
    if ratio is None:
        return frame[outcome].cast(pl.Float64).to_numpy(), np.ones(frame.height), 1.0, MEAN_OUTCOMES[outcome]
    total = frame[ratio.numerator].cast(pl.Float64).to_numpy()
    return total, frame[ratio.exposure].cast(pl.Float64).to_numpy(), ratio.scale, ratio.unit


# --- parametric designs with bootstrap intervals -------------------------------------------------


@dataclass
class Estimated:
    result: OutcomeResult
    diagnostics: Diagnostics
    weights: np.ndarray


def estimate_outcome(spec: StudySpec, outcome: str, frame: pl.DataFrame, resamples: int) -> Estimated:
    """One outcome's ATT (or ATE) in ``frame`` with a parametric design and its bootstrap interval."""
    try:
        return _estimate_outcome(spec, outcome, frame, resamples)
    except np.linalg.LinAlgError as exc:
        raise EstimationError(f"{outcome}: a model could not be fitted ({exc})") from exc


def _estimate_outcome(spec: StudySpec, outcome: str, frame: pl.DataFrame, resamples: int) -> Estimated:
    t, x = treatment_and_covariates(spec, frame)
    if _ratio_for(outcome) is not None:
        total, exposure, scale, unit = _total_and_exposure(outcome, frame)
        result, draws, ps = ratio_effect(total, exposure, t, x, spec.design, resamples, spec.seed, scale, unit)
        w = weights_for(t, ps, "overlap" if spec.design == "overlap" else "ipw", "att")
        se = float(np.std(draws, ddof=1))
        diagnostics = balance_diagnostics(x, t, w, ps, result.estimate, se, scale * total / exposure)
    else:
        y = frame[outcome].cast(pl.Float64).to_numpy()
        estimate = estimate_effect(y, t, x, spec.design, spec.estimand, resamples, spec.seed)  # type: ignore[arg-type]
        treated_mean = float(y[t == 1].mean())
        result = OutcomeResult(
            outcome, estimate.estimate, estimate.ci_low, estimate.ci_high, MEAN_OUTCOMES[outcome],
            treated_mean, treated_mean - estimate.estimate, estimate.variance, estimate.standard_error,
        )  # fmt: skip
        diagnostics = estimate.diagnostics
        w = np.ones(t.shape[0])
    result.outcome = outcome
    diagnostics.covariates = list(spec.covariates)
    return Estimated(result, diagnostics, w)


# --- cross-fitted designs -------------------------------------------------------------------------


def _effect_result(outcome: str, unit: str, effect: EffectOnTreated, variance: str) -> OutcomeResult:
    return OutcomeResult(
        outcome=outcome,
        estimate=effect.estimate,
        ci_low=effect.ci_low,
        ci_high=effect.ci_high,
        unit=unit,
        treated_value=effect.treated_value,
        counterfactual_value=effect.counterfactual_value,
        variance=variance,
        standard_error=effect.standard_error,
        log_ratio=effect.log_ratio,
        log_ratio_se=effect.log_ratio_se,
    )


def _variance_label(learners: Learners, clusters: bool = False) -> str:
    level = ", clustered by agency" if clusters else ""
    return f"influence function of the cross-fitted doubly robust score{level}; nuisance: {learners.describe()}"


@dataclass
class CrossFitOutcome:
    effect: EffectOnTreated
    result: OutcomeResult
    total: np.ndarray
    exposure: np.ndarray
    m0: np.ndarray


def _loss(outcome: str) -> Loss:
    return "squared" if outcome in MEAN_OUTCOMES else "poisson"


def _dml_outcome(
    outcome: str, frame: pl.DataFrame, t: np.ndarray, nuisance: CrossFitted, m0: np.ndarray, spec: StudySpec
) -> CrossFitOutcome:
    """The outcome's doubly robust ATT from its cross-fitted comparison-group model ``m0``."""
    total, exposure, scale, unit = _total_and_exposure(outcome, frame)
    effect = doubly_robust_att(total, exposure, t, nuisance.propensity, m0, spec.weights.rule(), scale=scale)
    result = _effect_result(outcome, unit, effect, _variance_label(nuisance.settings))
    return CrossFitOutcome(effect, result, total, exposure, m0)


def _learners(spec: StudySpec, t: np.ndarray) -> Learners:
    return spec.learners.learners(spec.seed, int(min(t.sum(), (1 - t).sum())))


def _dml_controls(
    spec: StudySpec, frame: pl.DataFrame, t: np.ndarray, nuisance: CrossFitted, main: CrossFitOutcome
) -> Controls:
    """Each negative control and their composite with the main outcome's design: the same cross-fitted
    propensity scores and weights, and an outcome model that is the main outcome's cross-fitted rate times
    the control's share of it (``proportional_outcome``): a control shares the main outcome's risk, and its
    few events alone would give a learner little to fit."""
    if not spec.negative_controls:
        return Controls([])

    def estimate(outcome: str) -> tuple[OutcomeResult, EffectOnTreated]:
        total, exposure, scale, unit = _total_and_exposure(outcome, frame)
        m0 = proportional_outcome(total, exposure, t, main.m0, nuisance.fold)
        effect = doubly_robust_att(total, exposure, t, nuisance.propensity, m0, spec.weights.rule(), scale=scale)
        return _effect_result(outcome, unit, effect, _variance_label(nuisance.settings)), effect

    each = [estimate(c)[0] for c in spec.negative_controls]
    composite, composite_effect = estimate(COMPOSITE)
    return Controls(each, composite, log_ratio_difference_se(main.effect, composite_effect))


# --- negative controls and calibration -------------------------------------------------------------


@dataclass
class Controls:
    """A study's negative controls as estimated: one by one, their composite, and the standard error of the
    main log rate ratio minus the composite's (from their joint influence function, when the design has one)."""

    each: list[OutcomeResult]
    composite: OutcomeResult | None = None
    difference_se: float | None = None

    @property
    def rows(self) -> list[OutcomeResult]:
        return [*self.each, *([self.composite] if self.composite is not None else [])]


def _calibrate(
    spec: StudySpec, main: OutcomeResult, controls: Controls
) -> tuple[SystematicError | None, CalibratedInterval | None]:
    """The systematic error: its mean from the composite control, its spread from the controls one by one
    (``calibration.py``); the calibrated interval from the main estimate minus the composite's. Without a
    composite estimate, Schuemie's fit on the controls one by one. A study that sets a prior on the spread
    (``calibration.spread_prior_scale``) widens its intervals by the spread's posterior root mean square;
    EASE and the gate keep the fitted spread."""
    each = controls.each
    estimates = [(c.log_ratio, c.log_ratio_se) for c in each if c.log_ratio is not None and c.log_ratio_se]
    if not spec.negative_controls or not estimates:
        return None, None
    logs, ses = np.array([e for e, _ in estimates]), np.array([s for _, s in estimates])
    composite = controls.composite
    if composite is None or composite.log_ratio is None or not composite.log_ratio_se:
        error = fit_systematic_error(logs, ses)
    else:
        error = composite_systematic_error(composite.log_ratio, composite.log_ratio_se, logs, ses)
    if spec.calibration is not None:
        error = with_spread_prior(error, logs, ses, spec.calibration.spread_prior_scale)
    if main.log_ratio is None or not main.log_ratio_se:
        return error, None
    if composite is None or composite.log_ratio is None or not composite.log_ratio_se:
        return error, calibrate_interval(main.log_ratio, main.log_ratio_se, error)
    difference_se = controls.difference_se or math.hypot(main.log_ratio_se, composite.log_ratio_se)
    return error, calibrate_difference(main.log_ratio, error, difference_se)


def _published_effect(spec: StudySpec, main: OutcomeResult, calibrated: CalibratedInterval | None) -> Effect:
    if calibrated is None:
        return Effect(main.outcome, main.unit, main.estimate, main.ci_low, main.ci_high)
    treated = main.treated_value
    return Effect(
        main.outcome,
        main.unit,
        difference_from_ratio(treated, math.exp(calibrated.log_rr)),
        difference_from_ratio(treated, math.exp(calibrated.ci_low)),
        difference_from_ratio(treated, math.exp(calibrated.ci_high)),
        uncalibrated=(main.estimate, main.ci_low, main.ci_high),
    )


def _calibration_json(
    spec: StudySpec, error: SystematicError | None, calibrated: CalibratedInterval | None, controls: Controls
) -> dict[str, Any] | None:
    if error is None:
        return None
    limits = spec.diagnostics
    out: dict[str, Any] = {
        "systematic_error": error.as_json(),
        "scale": "log rate ratio",
        "mean_from": "composite control" if controls.composite is not None else "controls one by one",
        "ease_judged": not limits.ease_when_detectable or error.ease_judged(limits.max_ease),
    }
    if calibrated is not None:
        out["calibrated_log_rate_ratio"] = [calibrated.log_rr, calibrated.ci_low, calibrated.ci_high]
        out["calibrated_standard_error"] = calibrated.se
    return out


# --- the verdict ----------------------------------------------------------------------------------


def _net_savings(figures: dict[str, Any]) -> dict[str, float] | None:
    scenarios = figures.get("scenarios")
    return {k: float(v["net_savings"]) for k, v in scenarios.items()} if scenarios else None


def _finish(
    spec: StudySpec,
    frame: pl.DataFrame,
    attrition: dict[str, int],
    main: OutcomeResult,
    diagnostics: Diagnostics,
    checks: list[Check],
    controls: Controls,
    weights: np.ndarray,
    design: dict[str, Any],
    placebo: OutcomeResult | None = None,
) -> StudyResult:
    """Calibration, funder figures and the verdict, for any design."""
    t = treatment(spec, frame)
    error, calibrated = _calibrate(spec, main, controls)
    if spec.negative_controls:
        checks = [*checks, *calibration_checks(spec.diagnostics, len(spec.negative_controls), error)]
    effect = _published_effect(spec, main, calibrated)
    figures: dict[str, Any] = {}
    retained = (t == 1) & (weights > 0)
    if spec.outcome == "unplanned_admissions":
        years = frame["person_years"].to_numpy()
        treated_years = float(years[retained].sum())
        figures = funder_figures(effect, treated_years, treated_years * 12)
    elif spec.outcome == "zarit_change_12m":
        figures = severe_band_figures(spec, frame)
    verdict = decide(checks, effect, _net_savings(figures))
    diagnostics.attrition = attrition
    return StudyResult(
        spec, int(t.sum()), int((1 - t).sum()), attrition, main, controls.rows, diagnostics, verdict, figures,
        placebo=placebo, calibration=_calibration_json(spec, error, calibrated, controls), design=design,
        retained_treated=frame["episode_id"].filter(pl.Series(retained)).to_list(),
    )  # fmt: skip


def _not_estimated(
    spec: StudySpec, n_treated: int, n_comparison: int, attrition: dict[str, int], checks: list[Check]
) -> StudyResult:
    return StudyResult(spec, n_treated, n_comparison, attrition, None, [], None, decide(checks, None, None))


STUDY_ENGINE_MEMORY_SHARE = 0.5
"""The share of DuckDB's memory limit a study's queries run under (``warehouse.memory_share``). The dataset
query filled the whole limit (2 GB) beside the frames the study then holds: at 1,000,000 persons it peaked at
2.2 to 2.4 GiB, the smaller studies' peak; under half the limit it spills and peaks at 1.7 GiB, for 3 s more
(``docs/benchmarks-notes.md``)."""


def run_study(con: Engine | Any, spec: StudySpec, descriptive: bool = True) -> StudyResult:
    """The study on the warehouse: its population, design, negative controls and verdict.

    ``descriptive``: also the cumulative-incidence curves and subgroups (figures that do not change
    the estimate or the verdict; the validation over hundreds of federations leaves them out).
    Its arithmetic runs on one thread (``threads.py``); on DuckDB its queries run under
    ``STUDY_ENGINE_MEMORY_SHARE`` of the engine's memory limit.
    """
    with study_queries_limited(con), single_threaded(openmp=uses_boosting(spec)):
        inputs = study_inputs(con, spec)
        return with_event_study(con, spec, inputs, estimate_study(spec, inputs, descriptive), descriptive)


def study_queries_limited(con: Engine | Any) -> contextlib.AbstractContextManager[None]:
    """On DuckDB, its memory limit at ``STUDY_ENGINE_MEMORY_SHARE`` while the block runs (the studies' queries)."""
    engine = as_engine(con)
    if engine.name != "duckdb":
        return contextlib.nullcontext()
    return warehouse.memory_share(engine.working, STUDY_ENGINE_MEMORY_SHARE)


def uses_boosting(spec: StudySpec) -> bool:
    """Whether the study's design may fit gradient boosting (scikit-learn's OpenMP runtime)."""
    return spec.design in ("dml", "did")


@dataclass
class StudyInputs:
    """What a study reads from the engine before it estimates: its population (with its negative controls'
    outcomes when it has some), the attrition table and, for the designs that need them, the admissions by month
    before the index date. ``estimate_study`` reads nothing else, so it may run in another process."""

    frame: pl.DataFrame
    attrition: dict[str, int]
    history: Admissions | None


def study_inputs(con: Engine | Any, spec: StudySpec) -> StudyInputs:
    """The study's queries on the engine (``StudyInputs``); an arm of fewer than 2 episodes reads no admissions."""
    frame, attrition = study_population(spec, study_dataset(con, spec))
    t = treatment(spec, frame)
    if min(int(t.sum()), int((1 - t).sum())) < 2:
        return StudyInputs(frame, attrition, None)
    months = max(spec.history_months, 1)
    history = admissions(con, frame, months) if spec.negative_controls or spec.design == "did" else None
    if history is not None and spec.negative_controls:
        frame = frame.with_columns(
            pl.Series(control, history.after(outcome_key(control))) for control in spec.negative_controls
        )
        frame = frame.with_columns(pl.sum_horizontal(*spec.negative_controls).alias(COMPOSITE))
    return StudyInputs(frame, attrition, history)


def with_event_study(
    con: Engine | Any, spec: StudySpec, inputs: StudyInputs, result: StudyResult, descriptive: bool
) -> StudyResult:
    """An estimated difference-in-differences with its event-study rates (a query on the engine) when
    ``descriptive``; any other result as it is."""
    if spec.design == "did" and descriptive and result.main is not None:
        assert inputs.history is not None
        result.event_study = event_study_rows(con, spec, inputs.frame, inputs.history)
    return result


def estimate_study(spec: StudySpec, inputs: StudyInputs, descriptive: bool = True) -> StudyResult:
    """The study's design, negative controls and verdict on its ``inputs``, without the engine (the arithmetic
    of ``run_study``, on the threads the caller allows)."""
    frame, attrition, history = inputs.frame, inputs.attrition, inputs.history
    t = treatment(spec, frame)
    n_treated, n_comparison = int(t.sum()), int((1 - t).sum())
    # Too small an arm fails the gate, but is still estimated (for the analyst) when it can be.
    sizes = size_checks(spec.diagnostics, n_treated, n_comparison)
    if min(n_treated, n_comparison) < 2:
        return _not_estimated(spec, n_treated, n_comparison, attrition, sizes)
    try:
        if spec.design == "did":
            assert history is not None
            result = run_did(spec, frame, attrition, history, sizes)
        elif spec.design == "dml":
            result = run_dml(spec, frame, attrition, sizes, descriptive)
        else:
            result = run_parametric(spec, frame, attrition, sizes, descriptive)
    except (EstimationError, np.linalg.LinAlgError, ValueError) as exc:
        return _not_estimated(spec, n_treated, n_comparison, attrition, [*sizes, failure("estimation", str(exc))])
    return result


def run_parametric(
    spec: StudySpec, frame: pl.DataFrame, attrition: dict[str, int], sizes: list[Check], descriptive: bool = True
) -> StudyResult:
    main = estimate_outcome(spec, spec.outcome, frame, spec.bootstrap)
    checks = [*sizes, *balance_checks(spec.diagnostics, main.diagnostics)]
    each = [estimate_outcome(spec, c, frame, spec.bootstrap).result for c in spec.negative_controls]
    composite = estimate_outcome(spec, COMPOSITE, frame, spec.bootstrap).result if spec.negative_controls else None
    # Bootstrap designs keep no influence function: the difference's variance is taken as the sum of the
    # two (conservative: it ignores what the main outcome and the composite share).
    controls = Controls(each, composite)
    design = {"design": spec.design, "variance": main.result.variance}
    result = _finish(spec, frame, attrition, main.result, main.diagnostics, checks, controls, main.weights, design)
    if not descriptive:
        return result
    if spec.outcome == "unplanned_admissions":
        result.curves = admission_curves(spec, frame)
    result.subgroups = [
        _parametric_subgroup(spec, frame, dimension, value, result)
        for dimension in spec.subgroups
        for value in sorted(frame[dimension].drop_nulls().unique().to_list())
    ]
    return result


def _subgroup_verdict(
    spec: StudySpec, whole: StudyResult, checks: list[Check], result: OutcomeResult | None
) -> tuple[Verdict, CalibratedInterval | None]:
    """A subgroup is publishable when its own checks pass and the whole study is; calibrated like the study."""
    checks = [*checks, Check("whole_study_publishable", None, None, whole.publishable)]
    if result is None:
        return decide(checks, None, None), None
    calibrated = None
    error = (whole.calibration or {}).get("systematic_error")
    if error and result.log_ratio is not None and result.log_ratio_se:
        calibrated = calibrate_interval(result.log_ratio, result.log_ratio_se, SystematicError.from_json(error))
    return decide(checks, _published_effect(spec, result, calibrated), None), calibrated


def _parametric_subgroup(
    spec: StudySpec, frame: pl.DataFrame, dimension: str, value: str, whole: StudyResult
) -> SubgroupResult:
    part = frame.filter(pl.col(dimension) == value)
    t = treatment(spec, part)
    n_treated, n_comparison = int(t.sum()), int((1 - t).sum())
    checks = size_checks(spec.diagnostics, n_treated, n_comparison)
    result = None
    years = None
    if min(n_treated, n_comparison) >= max(spec.diagnostics.min_treated, 2):
        try:
            estimated = estimate_outcome(spec, spec.outcome, part, spec.subgroup_bootstrap)
            result = estimated.result
            years = _treated_person_years(spec, part, t, estimated.weights)
            checks += balance_checks(spec.diagnostics, estimated.diagnostics)
        except EstimationError as exc:
            checks.append(failure("estimation", str(exc)))
    verdict, calibrated = _subgroup_verdict(spec, whole, checks, result)
    return SubgroupResult(dimension, value, n_treated, n_comparison, result, verdict, calibrated, years)


def _treated_person_years(spec: StudySpec, frame: pl.DataFrame, t: np.ndarray, weights: np.ndarray) -> float | None:
    """The exposure of the treated episodes the weights keep, for an outcome per person-year; else None."""
    ratio = _ratio_for(spec.outcome)
    if ratio is None or ratio.exposure != "person_years":
        return None
    return float(frame["person_years"].cast(pl.Float64).to_numpy()[(t == 1) & (weights > 0)].sum())


def run_dml(
    spec: StudySpec, frame: pl.DataFrame, attrition: dict[str, int], sizes: list[Check], descriptive: bool = True
) -> StudyResult:
    """Cross-fitted AIPW: one propensity fit shared by the main outcome, its negative controls and subgroups."""
    t, x = treatment_and_covariates(spec, frame)
    learners = _learners(spec, t)
    total, exposure, scale, _ = _total_and_exposure(spec.outcome, frame)
    nuisance, m0 = crossfit_both(total, exposure, t, x, learners, _loss(spec.outcome))
    main = _dml_outcome(spec.outcome, frame, t, nuisance, m0, spec)
    diagnostics = balance_diagnostics(
        x, t, main.effect.weights, nuisance.propensity, main.effect.estimate, main.effect.standard_error,
        scale * total / exposure, list(spec.covariates),
    )  # fmt: skip
    checks = [*sizes, *balance_checks(spec.diagnostics, diagnostics)]
    controls = _dml_controls(spec, frame, t, nuisance, main)
    design = {"design": "dml", "learners": learners.describe(), **main.effect.details}
    result = _finish(spec, frame, attrition, main.result, diagnostics, checks, controls, main.effect.weights, design)
    if not descriptive:
        return result
    if spec.outcome == "unplanned_admissions":
        # The curves' models read the covariates' cells only: the matrix (200 MB at a million rows) is let go
        # while they run, their peak, and built again (the same floats) for the subgroups' balance.
        cells = group_cells(t, x)
        del x
        result.curves = admission_curves(spec, frame, cells)
        del cells
        x = covariate_matrix(spec, frame)
    result.subgroups = [
        _dml_subgroup(spec, frame, dimension, value, result, main, nuisance, x)
        for dimension in spec.subgroups
        for value in sorted(frame[dimension].drop_nulls().unique().to_list())
    ]
    return result


def _dml_subgroup(
    spec: StudySpec,
    frame: pl.DataFrame,
    dimension: str,
    value: str,
    whole: StudyResult,
    main: CrossFitOutcome,
    nuisance: CrossFitted,
    x: np.ndarray,
) -> SubgroupResult:
    """The subgroup's ATT from the whole study's cross-fitted scores, averaged within the subgroup."""
    rows = (frame[dimension] == value).to_numpy()
    t = (frame["cohort"] == spec.treated_cohort).to_numpy().astype(int)[rows]
    n_treated, n_comparison = int(t.sum()), int((1 - t).sum())
    checks = size_checks(spec.diagnostics, n_treated, n_comparison)
    result = None
    years = None
    if min(n_treated, n_comparison) >= max(spec.diagnostics.min_treated, 2):
        _, _, scale, unit = _total_and_exposure(spec.outcome, frame)
        try:
            effect = doubly_robust_att(
                main.total[rows], main.exposure[rows], t, nuisance.propensity[rows], main.m0[rows],
                spec.weights.rule(), scale=scale,
            )  # fmt: skip
            result = _effect_result(spec.outcome, unit, effect, _variance_label(nuisance.settings))
            years = _treated_person_years(spec, frame.select("person_years").filter(pl.Series(rows)), t, effect.weights)
            diagnostics = balance_diagnostics(
                x, t, effect.weights, nuisance.propensity[rows], effect.estimate, effect.standard_error,
                scale * main.total[rows] / main.exposure[rows], list(spec.covariates), rows=np.flatnonzero(rows),
            )  # fmt: skip
            checks += balance_checks(spec.diagnostics, diagnostics)
        except EstimationError as exc:
            checks.append(failure("estimation", str(exc)))
    verdict, calibrated = _subgroup_verdict(spec, whole, checks, result)
    return SubgroupResult(dimension, value, n_treated, n_comparison, result, verdict, calibrated, years)


# --- difference-in-differences ---------------------------------------------------------------------


def run_did(
    spec: StudySpec, frame: pl.DataFrame, attrition: dict[str, int], history: Admissions, sizes: list[Check]
) -> StudyResult:
    """Doubly robust DiD on the baseline window, its placebo and dip checks, negative controls on the same design."""
    t, x = treatment_and_covariates(spec, frame)
    learners = _learners(spec, t)
    rule = spec.weights.rule()
    windows = spec.windows()
    years = frame["person_years"].to_numpy()
    clusters = frame["agency_id"].to_numpy() if spec.did_level == "agency" else None
    variance = _variance_label(learners, clusters is not None)
    by_month = history.before_by_month()
    baseline_years = len(windows.baseline) * MONTH_YEARS
    baseline = window_counts(by_month, windows.baseline)
    changes, controls_from = _did_changes(spec, history, by_month, baseline, years)
    found = list(did_on_changes(changes, t, x, learners, rule, clusters))
    effects = [effect for effect, _ in found]
    effect, nuisance = found[0]
    main = _effect_result(spec.outcome, "per 1,000 person-years (difference-in-differences)", effect, variance)
    covariates = [*spec.covariates, "baseline_rate"]
    diagnostics = balance_diagnostics(
        did_design(x, baseline, baseline_years), t, effect.weights, nuisance.propensity, effect.estimate,
        effect.standard_error, 1000 * history.after() / years, covariates,
    )  # fmt: skip
    checks = [*sizes, *balance_checks(spec.diagnostics, diagnostics)]
    placebo = _effect_result("pre_trend_placebo", "per 1,000 person-years (later minus earlier baseline half)",
                             effects[1], variance)  # fmt: skip
    placebo_months = [windows.placebo_early.stop - 1, windows.placebo_late.start]
    checks.append(
        interval_includes_zero(
            "pre_trend_placebo", placebo.estimate, placebo.ci_low, placebo.ci_high, months_before=placebo_months
        )
    )
    dip = _ratio_interval(effects[2])
    dip_months = [windows.dip.start, windows.dip.stop - 1]
    dip_check = at_most("pre_enrolment_dip", dip["ratio_low"], 1.0, ratio=dip["ratio"], months_before=dip_months)
    checks.append(dip_check)
    design: dict[str, Any] = {
        "design": "did",
        "learners": learners.describe(),
        "pre_period_months": spec.pre_period_months,
        "washout_months": spec.washout_months,
        "baseline_months_before": [windows.baseline.start, windows.baseline.stop - 1],
        "dip": dip,
        **effect.details,
    }
    if len(windows.washout):
        design["washout_dip"] = _ratio_interval(effects[3])
    if clusters is not None:
        fewest = min(np.unique(clusters[t == arm]).shape[0] for arm in (0, 1))
        checks.append(at_least("agencies_per_arm", fewest, MIN_CLUSTERS))
    controls = Controls([])
    if spec.negative_controls:
        each = [
            _effect_result(c, main.unit, control, variance)
            for c, control in zip(spec.negative_controls, effects[controls_from:-1], strict=True)
        ]
        composite = _effect_result(COMPOSITE, main.unit, effects[-1], variance)
        controls = Controls(each, composite, log_ratio_difference_se(effect, effects[-1]))
    return _finish(spec, frame, attrition, main, diagnostics, checks, controls, effect.weights, design, placebo=placebo)


def _did_changes(
    spec: StudySpec, history: Admissions, by_month: np.ndarray, baseline: np.ndarray, years: np.ndarray
) -> tuple[list[Change], int]:
    """A DiD study's designs, in the order they are estimated (``did.did_on_changes``), and the position of its
    first negative control: the main design; the placebo (later against earlier baseline half) and the dip check,
    two DiDs entirely inside the pre-period (no effect possible); the washout's dip when the study has a washout;
    each negative control, then their composite.

    The propensity model's covariates are the study's and the baseline rate of the design's ``before`` window:
    designs with the same ``before`` window (the main one and the washout's; the placebo and the dip check) have the
    same cross-fitted propensity scores, fitted once. A control's change is mostly noise (a few events a year): its
    outcome model is a linear regression on the same covariates and its own baseline rate; its propensity scores
    are the main outcome's."""
    windows = spec.windows()
    baseline_years = len(windows.baseline) * MONTH_YEARS
    n = years.shape[0]
    changes = [Change(baseline, baseline_years, history.after(), years)]
    fitted_for: dict[range, int] = {windows.baseline: 0}

    def pre_window(before: range, after: range) -> Change:
        """A DiD entirely inside the pre-period: ``after`` months against ``before`` months."""
        after_years = np.full(n, len(after) * MONTH_YEARS)
        change = Change(
            window_counts(by_month, before), len(before) * MONTH_YEARS, window_counts(by_month, after), after_years,
            propensity_from=fitted_for.get(before),
        )  # fmt: skip
        fitted_for.setdefault(before, len(changes))
        return change

    changes.append(pre_window(windows.placebo_early, windows.placebo_late))
    changes.append(pre_window(windows.dip_reference, windows.dip))
    if len(windows.washout):
        changes.append(pre_window(windows.baseline, windows.washout))
    controls_from = len(changes)
    if spec.negative_controls:
        keys = [outcome_key(c) for c in spec.negative_controls]
        # Each control's baseline counts, not its rows x months array (200 MB at a million rows): the composite's
        # are their sum (counts: the same numbers as the window of the summed arrays, exactly).
        before = {k: window_counts(history.before_by_month(k), windows.baseline) for k in keys}
        for k in keys:
            changes.append(Change(before[k], baseline_years, history.after(k), years, 0, "parametric"))
        composite_before = sum(before[k] for k in keys)
        composite_after = sum(history.after(k) for k in keys)
        changes.append(Change(composite_before, baseline_years, composite_after, years, 0, "parametric"))  # type: ignore[arg-type]
    return changes, controls_from


def _ratio_interval(effect: EffectOnTreated) -> dict[str, float | None]:
    """The treated arm's rate over its counterfactual in a pre-period window, with its 95% interval."""
    if effect.log_ratio is None or effect.log_ratio_se is None:
        return {"ratio": None, "ratio_low": None, "ratio_high": None}
    return {
        "ratio": math.exp(effect.log_ratio),
        "ratio_low": math.exp(effect.log_ratio - Z95 * effect.log_ratio_se),
        "ratio_high": math.exp(effect.log_ratio + Z95 * effect.log_ratio_se),
    }


def event_study(con: Engine | Any, spec: StudySpec) -> pl.DataFrame:
    """Unplanned admission rates by month relative to the index date (the pre-period to +11) and cohort,
    over the study's population (episodes with the pre-period in the data)."""
    frame, _ = study_population(spec, study_dataset(con, spec))
    return event_study_rows(con, spec, frame, admissions(con, frame, spec.pre_period_months))


def event_study_rows(con: Engine | Any, spec: StudySpec, frame: pl.DataFrame, history: Admissions) -> pl.DataFrame:
    """``event_study`` on the study's population ``frame`` and its admissions by month before the index date
    (``history``, at least the pre-period's months): a study run computes it on the frame it estimated on,
    instead of building the dataset a second time."""
    by_month = history.before_by_month()
    cohorts = frame["cohort"].to_numpy()
    follow = frame["follow_up_days"].to_numpy().astype(float)
    after = admissions_after_by_month(con, frame)
    after = after.join(frame.select("episode_id", "cohort"), on="episode_id")
    rows = []
    for cohort in (spec.treated_cohort, spec.comparison_cohort):
        members = cohorts == cohort
        for m in range(-spec.pre_period_months, 12):
            if m < 0:
                events = int(by_month[members, -m - 1].sum())
                days = float(members.sum()) * MONTH_DAYS
            else:
                events = after.filter((pl.col("cohort") == cohort) & (pl.col("relative_month") == m)).height
                days = float(np.clip(follow[members] - m * MONTH_DAYS, 0, MONTH_DAYS).sum())
            rows.append({"cohort": cohort, "relative_month": m, "events": events, "person_years": days / 365.25,
                         "rate_per_1000py": 1000 * events / (days / 365.25) if days else None})  # fmt: skip
    return pl.DataFrame(rows, schema=EVENT_STUDY_SCHEMA)


EVENT_STUDY_SCHEMA = {
    "cohort": pl.String,
    "relative_month": pl.Int64,
    "events": pl.Int64,
    "person_years": pl.Float64,
    "rate_per_1000py": pl.Float64,
}


# --- descriptive figures -------------------------------------------------------------------------


def admission_curves(spec: StudySpec, frame: pl.DataFrame, x: np.ndarray | Cells | None = None) -> pl.DataFrame:
    """Cumulative incidence of a first unplanned admission, death competing, treated vs weighted comparison.
    ``x``: the frame's covariate matrix, or its cells (``group_cells``), when the caller holds them already (a
    second copy of the matrix is 200 MB at a million rows)."""
    t = treatment(spec, frame)
    x = covariate_matrix(spec, frame) if x is None else x
    first = frame["first_unplanned_day"].fill_null(-1).to_numpy()
    death = frame["death_day"].fill_null(-1).to_numpy()
    last = frame["window_days"].to_numpy() - 1
    days = np.where(first >= 0, first, np.where(death >= 0, death, last)).astype(np.int64)
    status = np.where(first >= 0, EVENT, np.where(death >= 0, COMPETING, 0))
    return cumulative_incidence_curves(days, status, t, x, spec.follow_up_days - 1, spec.bootstrap, spec.seed)


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


# --- rows for the marts ---------------------------------------------------------------------------


def _outcome_row(outcome: OutcomeResult, role: str, calibrated: Effect | None = None) -> dict[str, Any]:
    return {
        "outcome": outcome.outcome,
        "role": role,
        "estimate": outcome.estimate,
        "ci_low": outcome.ci_low,
        "ci_high": outcome.ci_high,
        "standard_error": outcome.standard_error,
        "estimate_calibrated": calibrated.estimate if calibrated else None,
        "ci_low_calibrated": calibrated.ci_low if calibrated else None,
        "ci_high_calibrated": calibrated.ci_high if calibrated else None,
        "unit": outcome.unit,
        "treated_value": outcome.treated_value,
        "counterfactual_value": outcome.counterfactual_value,
        "log_rate_ratio": outcome.log_ratio,
        "log_rate_ratio_se": outcome.log_ratio_se,
        "variance_method": outcome.variance,
    }


def _calibrated_effect(verdict: Verdict) -> Effect | None:
    numbers = verdict.numbers
    if not numbers.get("calibrated"):
        return None
    return Effect(numbers["outcome"], numbers["unit"], numbers["estimate"], numbers["ci_low"], numbers["ci_high"])


def result_rows(result: StudyResult) -> pl.DataFrame:
    """The study's results as rows for ``mart_impact_studies`` (aggregates only).

    One ``main`` row, one per negative control, the DiD's ``placebo``, one per subgroup level
    (``dimension``, ``dimension_value``); the whole study's rows carry ``all``. Every row carries
    the verdict that applies to it (the study's, or the subgroup's own) as JSON, and ``publishable``
    copied from it.
    """
    spec = result.spec
    study = {
        "study": spec.name,
        "study_version": spec.version,
        "study_order": spec.order,
        "question": " ".join(spec.question.split()),
        "design": spec.design,
        "estimand": spec.estimand,
    }
    diagnostics = {
        **(result.diagnostics.as_json() if result.diagnostics else {}),
        "design": result.design,
        "calibration": result.calibration,
    }
    whole = {
        **study,
        "dimension": "all",
        "dimension_value": "all",
        "n_treated": result.n_treated,
        "n_comparison": result.n_comparison,
        "publishable": result.verdict.publishable,
        "verdict": result.verdict.dumps(),
        "diagnostics": json.dumps(finite_json(diagnostics)),
        "reason": None,
    }
    rows: list[dict[str, Any]] = []
    if result.main is not None:
        main_row = _outcome_row(result.main, "main", _calibrated_effect(result.verdict))
        rows.append({**whole, **main_row, "funder_figures": json.dumps(result.funder_figures)})
    for control in result.negative_controls:
        row = {**whole, **_outcome_row(control, "negative_control"), "funder_figures": "{}"}
        reason = COMPOSITE_REASON if control.outcome == COMPOSITE else spec.negative_controls.get(control.outcome, "")
        row["reason"] = " ".join(reason.split())
        rows.append(row)
    if result.placebo is not None:
        rows.append({**whole, **_outcome_row(result.placebo, "placebo"), "funder_figures": "{}"})
    for group in result.subgroups:
        row = {
            **study,
            "dimension": group.dimension,
            "dimension_value": group.value,
            "n_treated": group.n_treated,
            "n_comparison": group.n_comparison,
            "publishable": group.verdict.publishable,
            "verdict": group.verdict.dumps(),
            "diagnostics": "{}",
            "funder_figures": json.dumps(
                {"treated_person_years": group.treated_person_years} if group.treated_person_years else {}
            ),
            "reason": None,
            "outcome": spec.outcome,
            "role": "subgroup",
        }
        if group.result is not None:
            row.update(_outcome_row(group.result, "subgroup", _calibrated_effect(group.verdict)))
        rows.append(row)
    if not rows:
        rows = [{**whole, "outcome": spec.outcome, "role": "main", "funder_figures": "{}"}]
    return pl.DataFrame(rows, schema_overrides=ROW_SCHEMA, infer_schema_length=None)


ROW_SCHEMA = {
    "estimate": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "standard_error": pl.Float64,
    "estimate_calibrated": pl.Float64,
    "ci_low_calibrated": pl.Float64,
    "ci_high_calibrated": pl.Float64,
    "treated_value": pl.Float64,
    "counterfactual_value": pl.Float64,
    "log_rate_ratio": pl.Float64,
    "log_rate_ratio_se": pl.Float64,
    "reason": pl.String,
}


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
