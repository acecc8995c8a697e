"""Cumulative incidence of a first event with death as a competing risk (weighted Aalen-Johansen).

For a study of unplanned admissions: the share of people with a first unplanned admission
by each day after the index date, among the treated and among the weighted comparison group
(the treated's counterfactual), with death competing (someone who dies can no longer be
admitted: one minus Kaplan-Meier would overstate the risk) and end of follow-up censoring.
Pointwise 95% bands come from a bootstrap within arms that refits the propensity model (on
cell totals, ``cells.py``), a hundred resamples' models fitted together (``fit_logistic_many``).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from pipelines.impact.cells import Cells, group_cells
from pipelines.impact.estimators import propensity, weights_for
from pipelines.impact.propensity import fit_logistic, fit_logistic_many
from pipelines.impact.resampling import Draw, batched_bootstrap_draws

CENSORED, EVENT, COMPETING = 0, 1, 2
RESAMPLES_PER_BATCH = 100
"""Bootstrap refits fitted together (``fit_logistic_many``): enough to make one matrix product of many small
ones, few enough to keep its working arrays (cells x resamples) to tens of megabytes."""


def aalen_johansen(days: np.ndarray, status: np.ndarray, weights: np.ndarray, horizon: int) -> np.ndarray:
    """Cumulative incidence of ``EVENT`` on each day 0..horizon (censoring after events on the same day)."""
    length = horizon + 1
    days = np.minimum(days, horizon)
    leaving = np.bincount(days, weights, minlength=length)[:length]
    at_risk = np.cumsum(leaving[::-1])[::-1]
    events = np.bincount(days[status == EVENT], weights[status == EVENT], minlength=length)[:length]
    competing = np.bincount(days[status == COMPETING], weights[status == COMPETING], minlength=length)[:length]
    with np.errstate(invalid="ignore", divide="ignore"):
        hazard = np.where(at_risk > 0, events / at_risk, 0.0)
        hazard_other = np.where(at_risk > 0, competing / at_risk, 0.0)
    survival = np.cumprod(1 - hazard - hazard_other)
    survival_before = np.concatenate([[1.0], survival[:-1]])
    return np.cumsum(survival_before * hazard)


def _arm_curves(
    days: np.ndarray,
    status: np.ndarray,
    t: np.ndarray,
    cells: Cells,
    rows: np.ndarray,
    horizon: int,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Both arms' curves over the rows drawn (``rows`` may repeat; each counts ``weights`` times when
    given), the propensity model refitted on them."""
    counts, _ = cells.totals(rows, weights=weights)
    drawn = counts > 0
    ps = np.zeros(cells.size)
    ps[drawn] = propensity(cells.t[drawn], cells.x[drawn], counts[drawn])
    days, status, t = days[rows], status[rows], t[rows]
    w = weights_for(t, ps[cells.index[rows]], "ipw", "att")
    if weights is not None:
        w = w * weights
    treated = t == 1
    return np.stack(
        [
            aalen_johansen(days[treated], status[treated], w[treated], horizon),
            aalen_johansen(days[~treated], status[~treated], w[~treated], horizon),
        ]
    )


def _arm_curves_many(
    days: np.ndarray,
    status: np.ndarray,
    t: np.ndarray,
    cells: Cells,
    draws: list[Draw],
    horizon: int,
    start: np.ndarray,
) -> np.ndarray:
    """``_arm_curves`` of several resamples: the propensity models of all of them refitted together
    (``fit_logistic_many``, from ``start``), on the cells any of them drew."""
    drawn_cells, counts, _ = cells.totals_many(draws)
    local = np.full(cells.size, -1, dtype=np.int64)
    local[drawn_cells] = np.arange(drawn_cells.shape[0])
    x = cells.x[drawn_cells]
    betas = fit_logistic_many(x, cells.t[drawn_cells], counts, start)
    ps = 1.0 / (1.0 + np.exp(-np.clip(betas[:, :1].T + x @ betas[:, 1:].T, -30, 30)))
    out = np.empty((len(draws), 2, horizon + 1))
    for b, (rows, weights) in enumerate(draws):
        drawn_t = t[rows]
        w = weights_for(drawn_t, ps[local[cells.index[rows]], b], "ipw", "att")
        if weights is not None:
            w = w * weights
        treated = drawn_t == 1
        drawn_days, drawn_status = days[rows], status[rows]
        out[b, 0] = aalen_johansen(drawn_days[treated], drawn_status[treated], w[treated], horizon)
        out[b, 1] = aalen_johansen(drawn_days[~treated], drawn_status[~treated], w[~treated], horizon)
    return out


def _people_counts(days: np.ndarray, status: np.ndarray, grid: np.ndarray) -> dict[str, np.ndarray]:
    """Unweighted counts of an arm's people on each ``grid`` day: ``at_risk`` (followed to that day or later) and
    ``events`` (a first event on or before it). Read off the sorted days: the same integers as counting the arm's
    rows once per grid day (53 passes over each arm, at a million rows a second of the curves' calling thread)."""
    ordered = np.sort(days)
    event_days = np.sort(days[status == EVENT])
    return {
        "at_risk": ordered.shape[0] - np.searchsorted(ordered, grid, side="left"),
        "events": np.searchsorted(event_days, grid, side="right"),
    }


def cumulative_incidence_curves(
    days: np.ndarray,
    status: np.ndarray,
    t: np.ndarray,
    x: np.ndarray | Cells,
    horizon: int,
    resamples: int,
    seed: int,
    step: int = 7,
) -> pl.DataFrame:
    """Curves for the treated and their weighted counterfactual every ``step`` days, with bands and counts.

    ``x``: the covariates, or their cells (``group_cells(t, x)``) when the caller grouped them and let the
    matrix go (the models read only the cells). ``at_risk`` and ``events`` are unweighted counts of people,
    for disclosure control.
    """
    cells = x if isinstance(x, Cells) else group_cells(t, x)
    point = _arm_curves(days, status, t, cells, np.arange(t.shape[0]), horizon)
    counts, _ = cells.totals(None)
    start = fit_logistic(cells.x, cells.t, counts)

    def curves(draws: list[Draw]) -> np.ndarray:
        return _arm_curves_many(days, status, t, cells, draws, horizon, start)

    # Re-centred little-bootstrap draws can stray a hair outside [0, 1] near day 0 or the plateau.
    draws = np.clip(batched_bootstrap_draws(t, curves, point, resamples, seed, batch=RESAMPLES_PER_BATCH), 0.0, 1.0)
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    grid = np.unique(np.append(np.arange(0, horizon + 1, step), horizon))
    frames = []
    for arm, label in ((1, "care_managed"), (0, "comparison_weighted")):
        rows = t == arm
        arm_days, arm_status = days[rows], status[rows]
        index = 0 if arm == 1 else 1
        frames.append(
            pl.DataFrame(
                {
                    "curve": label,
                    "day": grid,
                    "cumulative_incidence": point[index, grid],
                    "ci_low": low[index, grid],
                    "ci_high": high[index, grid],
                    **_people_counts(arm_days, arm_status, grid),
                }
            )
        )
    return pl.concat(frames)
