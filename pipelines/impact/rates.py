"""Ratio estimators: events per person-year and days per rupture, for the treated and their counterfactual.

A ratio outcome is a sum over an exposure (admissions over person-years, days without help
over ruptures). The ATT compares the treated ratio with the counterfactual ratio the
comparison group gives:

* ``ipw`` / ``overlap``: the ratio of weighted sums over the comparison group. It is biased
  when exposure itself differs between arms for the same covariates (treated people leave
  care management sooner, so their person-time leans towards the riskier strata than the
  weighted comparison's does);
* ``aipw``: doubly robust. A log-linear model fitted on the comparison group predicts each
  treated person's counterfactual count over *their own* exposure, and the weighted
  comparison residuals correct the model where it is wrong.

Intervals: a seeded bootstrap within arms that refits both models in every resample, on
cell totals (``cells.py``): exactly the row-level refit, at the cost of a few passes over the rows.
``did_effect`` is the difference-in-differences of rates, 12 months before against after.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.impact.cells import Cells, group_cells
from pipelines.impact.estimators import EstimationError, weights_for
from pipelines.impact.outcome_model import expected, fit_poisson
from pipelines.impact.propensity import fit_logistic, fit_logistic_many, scores
from pipelines.impact.resampling import Draw, batched_bootstrap_draws, bootstrap_draws, describe

RATIO_METHODS = ("ipw", "overlap", "aipw")


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
    standard_error: float | None = None
    log_ratio: float | None = None
    """log(treated / counterfactual), for ratio outcomes: the scale negative controls calibrate on."""
    log_ratio_se: float | None = None


def treated_and_counterfactual(
    numerator: np.ndarray,
    exposure: np.ndarray,
    t: np.ndarray,
    x: np.ndarray,
    ps: np.ndarray,
    method: str,
    rows: np.ndarray | None = None,
) -> tuple[float, float]:
    """(treated ratio, counterfactual ratio) for one sample: of rows, or of cell totals with ``rows`` per cell."""
    treated = t == 1
    control = ~treated
    treated_ratio = numerator[treated].sum() / exposure[treated].sum()
    w = weights_for(t, ps, "overlap" if method == "overlap" else "ipw", "att")
    weighted = (w * numerator)[control].sum() / (w * exposure)[control].sum()
    if method != "aipw":
        return float(treated_ratio), float(weighted)
    beta = fit_poisson(x[control], numerator[control], exposure[control], None if rows is None else rows[control])
    predicted = expected(x[treated], beta, exposure[treated]).sum() / exposure[treated].sum()
    residual = (w * (numerator - expected(x, beta, exposure)))[control].sum() / (w * exposure)[control].sum()
    return float(treated_ratio), float(predicted + residual)


def _on_cells(
    cells: Cells,
    rows: np.ndarray | None,
    numerator: np.ndarray,
    exposure: np.ndarray,
    method: str,
    start: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> tuple[tuple[float, float], np.ndarray, np.ndarray]:
    """``treated_and_counterfactual`` of the rows drawn (each ``weights`` times), each cell's propensity
    score (NaN if not drawn) and the propensity coefficients."""
    counts, (sums, exposures) = cells.totals(rows, numerator, exposure, weights=weights)
    drawn = counts > 0
    t, x, n = cells.t[drawn], cells.x[drawn], counts[drawn]
    beta = fit_logistic(x, t, n, start)
    ps = scores(x, beta)
    by_cell = np.full(cells.size, np.nan)
    by_cell[drawn] = ps
    return treated_and_counterfactual(sums[drawn], exposures[drawn], t, x, ps, method, n), by_cell, beta


def ratio_effect(
    numerator: np.ndarray,
    exposure: np.ndarray,
    t: np.ndarray,
    x: np.ndarray,
    method: str,
    resamples: int,
    seed: int,
    scale: float = 1000.0,
    unit: str = "per 1,000 person-years",
) -> tuple[OutcomeResult, np.ndarray, np.ndarray]:
    """ATT ratio difference (times ``scale``), its bootstrap draws and the propensity scores of the data."""
    if method not in RATIO_METHODS:
        raise EstimationError(f"a ratio outcome is estimated with one of {RATIO_METHODS}, not {method}")
    if (exposure <= 0).any():
        raise EstimationError("every row needs a positive exposure")
    cells = group_cells(t, x)
    (treated_ratio, counterfactual), ps_cells, beta = _on_cells(cells, None, numerator, exposure, method)

    def estimate(draws: list[Draw]) -> np.ndarray:
        # A hundred resamples' propensity models refitted together (``fit_logistic_many``), from the data's fit.
        ids, counts, (sums, exposures) = cells.totals_many(draws, numerator, exposure)
        t_drawn, x_drawn = cells.t[ids], cells.x[ids]
        betas = fit_logistic_many(x_drawn, t_drawn, counts, beta)
        out = np.empty((len(draws), 2))
        for b, fitted in enumerate(betas):
            keep = counts[b] > 0
            xk = x_drawn[keep]
            pair = treated_and_counterfactual(
                sums[b, keep], exposures[b, keep], t_drawn[keep], xk, scores(xk, fitted), method, counts[b, keep]
            )
            out[b] = [scale * (pair[0] - pair[1]), _log_ratio(*pair)]
        return out

    point = np.array([scale * (treated_ratio - counterfactual), _log_ratio(treated_ratio, counterfactual)])
    both = batched_bootstrap_draws(t, estimate, point, resamples, seed)
    draws = both[:, 0]
    logs = both[np.isfinite(both[:, 1]), 1]
    ps = ps_cells[cells.index]
    low, high = np.percentile(draws, [2.5, 97.5])
    models = "the propensity and outcome models" if method == "aipw" else "the propensity model"
    result = OutcomeResult(
        outcome="",
        estimate=scale * (treated_ratio - counterfactual),
        ci_low=float(low),
        ci_high=float(high),
        unit=unit,
        treated_value=scale * treated_ratio,
        counterfactual_value=scale * counterfactual,
        variance=f"bootstrap refitting {models} ({describe(t.shape[0], resamples, seed)})",
        standard_error=float(np.std(draws, ddof=1)),
        log_ratio=float(point[1]) if np.isfinite(point[1]) else None,
        log_ratio_se=float(np.std(logs, ddof=1)) if np.isfinite(point[1]) and logs.shape[0] > 1 else None,
    )
    return result, draws, ps


def _log_ratio(treated: float, counterfactual: float) -> float:
    return float(np.log(treated / counterfactual)) if treated > 0 and counterfactual > 0 else float("nan")


BEFORE_YEARS = 365 / 365.25
"""Every episode has 12 months of history before its index date."""


def did_point(
    before: np.ndarray,
    after: np.ndarray,
    after_years: np.ndarray,
    t: np.ndarray,
    before_years: float = BEFORE_YEARS,
    weights: np.ndarray | None = None,
) -> float:
    """(treated after - treated before) - (comparison after - comparison before), per 1,000 person-years.

    Each arm's before rate is weighted by each person's after person-time, so that both periods
    describe the same people in the same proportions: someone followed for a month after
    enrolment weighs a month in the before rate too (otherwise deaths after enrolment, more
    common among the riskier, would pass for an effect).
    """
    w = np.ones(t.shape[0]) if weights is None else weights
    change = {}
    for arm in (0, 1):
        rows = t == arm
        years = (w[rows] * after_years[rows]).sum()
        before_sum = (w[rows] * after_years[rows] * before[rows]).sum()
        change[arm] = ((w[rows] * after[rows]).sum() - before_sum / before_years) / years
    return 1000 * float(change[1] - change[0])


def did_effect(
    before: np.ndarray,
    after: np.ndarray,
    after_years: np.ndarray,
    t: np.ndarray,
    clusters: np.ndarray | None,
    resamples: int,
    seed: int,
    before_years: float = BEFORE_YEARS,
) -> tuple[OutcomeResult, np.ndarray]:
    """Difference-in-differences with a bootstrap resampling people within arms, or whole agencies.

    ``clusters`` (an agency per row) makes the interval resample whole agencies within arms.
    """
    estimate = did_point(before, after, after_years, t, before_years)
    if clusters is None:

        def point(rows: np.ndarray, weights: np.ndarray | None) -> float:
            return did_point(before[rows], after[rows], after_years[rows], t[rows], before_years, weights)

        draws = bootstrap_draws(t, point, estimate, resamples, seed)
    else:
        rng = np.random.default_rng(seed)
        draws = np.empty(resamples)
        members = {
            arm: [np.flatnonzero((t == arm) & (clusters == c)) for c in np.unique(clusters[t == arm])] for arm in (0, 1)
        }
        for b in range(resamples):
            picked = [members[arm][i] for arm in (0, 1) for i in rng.integers(0, len(members[arm]), len(members[arm]))]
            rows = np.concatenate(picked)
            draws[b] = did_point(before[rows], after[rows], after_years[rows], t[rows], before_years)
    low, high = np.percentile(draws, [2.5, 97.5])
    treated = t == 1
    treated_after = 1000 * after[treated].sum() / after_years[treated].sum()
    level = "people" if clusters is None else "agencies"
    result = OutcomeResult(
        outcome="",
        estimate=estimate,
        ci_low=float(low),
        ci_high=float(high),
        unit="per 1,000 person-years (difference-in-differences)",
        treated_value=float(treated_after),
        counterfactual_value=float(treated_after - estimate),
        variance=f"bootstrap resampling {level} within arms "
        f"({describe(t.shape[0], resamples, seed) if clusters is None else f'{resamples} resamples, seed {seed}'})",
    )
    return result, draws
