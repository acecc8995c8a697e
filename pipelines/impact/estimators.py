"""Effect estimators for observational comparisons: matching, weighting and doubly robust.

Every estimator takes plain numpy arrays (outcome ``y``, treatment ``t`` in {0, 1},
covariates ``x`` without intercept) and returns an ``Estimate`` with its interval, the
variance method used, and the diagnostics that say whether the comparison can be trusted.

Intervals:

* weighting and doubly robust designs: a seeded bootstrap that refits the propensity model
  in every resample (1,000 resamples by default), percentile interval;
* nearest-neighbour matching **with** replacement: the Abadie-Imbens (2006) analytic
  variance, because the naive bootstrap is invalid for it (Abadie and Imbens, 2008);
* matching **without** replacement: a bootstrap of matched pairs (Austin and Small, 2014).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from pipelines.impact.cells import group_cells
from pipelines.impact.diagnostics import Diagnostics, balance_diagnostics
from pipelines.impact.propensity import fit_logistic, fit_logistic_many, scores
from pipelines.impact.resampling import Draw, batched_bootstrap_draws, describe

Method = Literal["match", "ipw", "overlap", "aipw"]
Estimand = Literal["att", "ate"]
Z95 = 1.959963984540054


class EstimationError(ValueError):
    pass


@dataclass
class Estimate:
    estimate: float
    ci_low: float
    ci_high: float
    standard_error: float
    estimand: str
    method: str
    variance: str
    n_treated: int
    n_control: int
    diagnostics: Diagnostics
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["diagnostics"] = self.diagnostics.as_json()
        return out


def _check_inputs(y: np.ndarray, t: np.ndarray, x: np.ndarray) -> None:
    if y.ndim != 1 or t.ndim != 1 or x.ndim != 2 or not (y.shape[0] == t.shape[0] == x.shape[0]):
        raise EstimationError("outcome, treatment and covariates must have one row per unit")
    if not np.isin(t, (0, 1)).all():
        raise EstimationError("treatment must be 0 or 1")
    if t.sum() < 2 or (1 - t).sum() < 2:
        raise EstimationError("need at least two treated and two control units")
    if not (np.isfinite(y).all() and np.isfinite(x).all()):
        raise EstimationError("outcome and covariates must be finite (drop or impute missing values first)")


def propensity(t: np.ndarray, x: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    return scores(x, fit_logistic(x, t, weights))


def _clip(ps: np.ndarray) -> np.ndarray:
    return np.clip(ps, 1e-6, 1 - 1e-6)


def weights_for(t: np.ndarray, ps: np.ndarray, method: str, estimand: str) -> np.ndarray:
    ps = _clip(ps)
    if method == "overlap":
        return np.where(t == 1, 1 - ps, ps)
    if estimand == "att":
        return np.where(t == 1, 1.0, ps / (1 - ps))
    return np.where(t == 1, 1 / ps, 1 / (1 - ps))


def _weighted_difference(y: np.ndarray, t: np.ndarray, w: np.ndarray) -> float:
    treated = t == 1
    return float(np.average(y[treated], weights=w[treated]) - np.average(y[~treated], weights=w[~treated]))


def _ols_predictions(x: np.ndarray, y: np.ndarray, rows: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    design = np.column_stack([np.ones(x.shape[0]), x])
    sub = design[rows]
    weights = np.ones(sub.shape[0]) if w is None else w[rows]
    coef, *_ = np.linalg.lstsq(sub * np.sqrt(weights)[:, None], y[rows] * np.sqrt(weights), rcond=None)
    return np.asarray(design @ coef)


def _aipw(y: np.ndarray, t: np.ndarray, x: np.ndarray, ps: np.ndarray, estimand: str, w: np.ndarray) -> float:
    """Augmented IPW with linear outcome models; ``w`` are resampling weights (1 for the data)."""
    ps = _clip(ps)
    mu0 = _ols_predictions(x, y, t == 0, w)
    if estimand == "att":
        odds = ps / (1 - ps)
        n1 = np.sum(w * t)
        return float(np.sum(w * (t * (y - mu0) - (1 - t) * odds * (y - mu0))) / n1)
    mu1 = _ols_predictions(x, y, t == 1, w)
    scores = mu1 - mu0 + t * (y - mu1) / ps - (1 - t) * (y - mu0) / (1 - ps)
    return float(np.sum(w * scores) / np.sum(w))


def _estimate_given(
    y: np.ndarray, t: np.ndarray, x: np.ndarray, ps: np.ndarray, method: str, estimand: str, w: np.ndarray
) -> float:
    if method == "aipw":
        return _aipw(y, t, x, ps, estimand, w)
    return _weighted_difference(y, t, w * weights_for(t, ps, method, estimand))


def _point(y: np.ndarray, t: np.ndarray, x: np.ndarray, method: str, estimand: str, w: np.ndarray) -> float:
    return _estimate_given(y, t, x, propensity(t, x, w), method, estimand, w)


def bootstrap(
    y: np.ndarray, t: np.ndarray, x: np.ndarray, method: str, estimand: str, resamples: int, seed: int
) -> np.ndarray:
    """Estimates over resamples drawn within each arm, refitting the propensity model each time.

    Each refit runs on cell totals (``cells.py``): every estimator here is linear in the outcome
    given the models, and the models depend on a row only through its cell, so the mean outcome
    of the rows drawn in a cell, weighted by how many were drawn, gives the row-level result.
    """
    cells = group_cells(t, x)
    counts, (sums,) = cells.totals(None, y)
    point = _point(sums / counts, cells.t, cells.x, method, estimand, counts)
    start = fit_logistic(cells.x, cells.t, counts)

    def estimate(draws: list[Draw]) -> np.ndarray:
        # A hundred resamples' propensity models refitted together (``fit_logistic_many``), from the data's fit.
        ids, counts, (sums,) = cells.totals_many(draws, y)
        t_drawn, x_drawn = cells.t[ids], cells.x[ids]
        betas = fit_logistic_many(x_drawn, t_drawn, counts, start)
        out = np.empty(len(draws))
        for b, beta in enumerate(betas):
            keep = counts[b] > 0
            n, xk = counts[b, keep], x_drawn[keep]
            out[b] = _estimate_given(sums[b, keep] / n, t_drawn[keep], xk, scores(xk, beta), method, estimand, n)
        return out

    return batched_bootstrap_draws(t, estimate, np.asarray(point), resamples, seed)


def _nearest(treated_scores: np.ndarray, control_scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """For each treated score, the k nearest control indices and their distances (with replacement)."""
    order = np.argsort(control_scores, kind="stable")
    sorted_scores = control_scores[order]
    position = np.searchsorted(sorted_scores, treated_scores)
    # Candidate window of k on each side, then keep the k closest.
    offsets = np.arange(-k, k)
    candidates = np.clip(position[:, None] + offsets[None, :], 0, sorted_scores.shape[0] - 1)
    distance = np.abs(sorted_scores[candidates] - treated_scores[:, None])
    best = np.argsort(distance, axis=1, kind="stable")[:, :k]
    chosen = np.take_along_axis(candidates, best, axis=1)
    return order[chosen], np.take_along_axis(distance, best, axis=1)


def match(
    y: np.ndarray,
    t: np.ndarray,
    x: np.ndarray,
    k: int = 1,
    caliper: float = 0.2,
    replace: bool = True,
    resamples: int = 1000,
    seed: int = 0,
) -> Estimate:
    """Nearest-neighbour matching 1:k on the logit of the propensity score, for the ATT.

    The caliper is in standard deviations of the logit (0.2 by default); treated units with
    no control within it are dropped and counted in the diagnostics.
    """
    _check_inputs(y, t, x)
    ps = _clip(propensity(t, x))
    logit = np.log(ps / (1 - ps))
    width = caliper * float(np.std(logit))
    treated = np.flatnonzero(t == 1)
    control = np.flatnonzero(t == 0)
    if replace:
        neighbours, distance = _nearest(logit[treated], logit[control], k)
        ok = (distance <= width).all(axis=1)
        matches = control[neighbours]
    else:
        matches, ok = _greedy_without_replacement(logit, treated, control, k, width, seed)
    kept = treated[ok]
    if kept.shape[0] < 2:
        raise EstimationError("fewer than two treated units found a match within the caliper")
    matched = matches[ok]
    counterfactual = y[matched].mean(axis=1)
    effects = y[kept] - counterfactual
    estimate = float(effects.mean())
    weights = np.zeros(y.shape[0])
    weights[kept] = 1.0
    np.add.at(weights, matched.ravel(), 1.0 / k)
    if replace:
        se = abadie_imbens_se(y, t, logit, kept, matched, estimate, k)
        variance = "Abadie-Imbens (2006) analytic variance for matching with replacement"
        low, high = estimate - Z95 * se, estimate + Z95 * se
    else:
        rng = np.random.default_rng(seed)
        draws = effects[rng.integers(0, effects.shape[0], size=(resamples, effects.shape[0]))].mean(axis=1)
        se = float(draws.std(ddof=1))
        low, high = (float(v) for v in np.percentile(draws, [2.5, 97.5]))
        variance = f"bootstrap of matched sets ({resamples} resamples, seed {seed}, percentile interval)"
    diagnostics = balance_diagnostics(x, t, weights, ps, estimate, se, y)
    diagnostics.attrition = {
        "treated": int(treated.shape[0]),
        "treated_matched": int(kept.shape[0]),
        "treated_dropped_outside_caliper": int(treated.shape[0] - kept.shape[0]),
        "controls_used": int(np.unique(matched).shape[0]),
    }
    method = (
        f"match 1:{k} on the logit propensity, caliper {caliper} SD, {'with' if replace else 'without'} replacement"
    )
    return Estimate(
        estimate,
        low,
        high,
        se,
        "att",
        method,
        variance,
        int(kept.shape[0]),
        int(np.unique(matched).shape[0]),
        diagnostics,
    )


def _greedy_without_replacement(
    logit: np.ndarray, treated: np.ndarray, control: np.ndarray, k: int, width: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching in random order of treated units; each control used once."""
    rng = np.random.default_rng(seed)
    available = np.ones(control.shape[0], dtype=bool)
    control_scores = logit[control]
    matches = np.zeros((treated.shape[0], k), dtype=np.int64)
    ok = np.zeros(treated.shape[0], dtype=bool)
    for i in rng.permutation(treated.shape[0]):
        distance = np.where(available, np.abs(control_scores - logit[treated[i]]), np.inf)
        best = np.argpartition(distance, k - 1)[:k] if k < distance.shape[0] else np.arange(distance.shape[0])
        if best.shape[0] < k or not np.isfinite(distance[best]).all() or (distance[best] > width).any():
            continue
        matches[i] = control[best]
        available[best] = False
        ok[i] = True
    return matches, ok


def abadie_imbens_se(
    y: np.ndarray,
    t: np.ndarray,
    score: np.ndarray,
    kept: np.ndarray,
    matched: np.ndarray,
    estimate: float,
    k: int,
) -> float:
    """Abadie-Imbens (2006) standard error of the matching ATT, with replacement.

    The conditional variance of each unit's outcome is estimated by matching it to its
    nearest neighbour in its own arm: sigma2_i = (y_i - y_j)^2 / 2.
    """
    n1 = kept.shape[0]
    used = np.zeros(y.shape[0])
    np.add.at(used, matched.ravel(), 1.0 / k)  # K_M(i) / M for controls
    sigma2 = np.zeros(y.shape[0])
    for arm in (0, 1):
        members = np.flatnonzero(t == arm)
        if members.shape[0] < 2:
            continue
        scores = score[members]
        order = np.argsort(scores, kind="stable")
        sorted_scores = scores[order]
        position = np.arange(members.shape[0])
        left = np.clip(position - 1, 0, members.shape[0] - 1)
        right = np.clip(position + 1, 0, members.shape[0] - 1)
        use_left = (np.abs(sorted_scores - sorted_scores[left]) <= np.abs(sorted_scores[right] - sorted_scores)) & (
            position > 0
        ) | (position == members.shape[0] - 1)
        neighbour = np.where(use_left, left, right)
        sorted_members = members[order]
        sigma2[sorted_members] = (y[sorted_members] - y[sorted_members[neighbour]]) ** 2 / 2
    counterfactual = y[matched].mean(axis=1)
    spread = np.sum((y[kept] - counterfactual - estimate) ** 2)
    controls = np.flatnonzero(used > 0)
    heterogeneity = np.sum((used[controls] ** 2 - used[controls] / k) * sigma2[controls])
    return float(np.sqrt(max(spread + heterogeneity, 0.0)) / n1)


def weighting(
    y: np.ndarray,
    t: np.ndarray,
    x: np.ndarray,
    method: Method = "ipw",
    estimand: Estimand = "att",
    resamples: int = 1000,
    seed: int = 0,
) -> Estimate:
    """Inverse-probability (``ipw``), overlap (``overlap``) or augmented IPW (``aipw``) weighting."""
    _check_inputs(y, t, x)
    if method not in ("ipw", "overlap", "aipw"):
        raise EstimationError(f"unknown weighting method {method!r}")
    ps = propensity(t, x)
    estimate = _estimate_given(y, t, x, ps, method, estimand, np.ones(y.shape[0]))
    draws = bootstrap(y, t, x, method, estimand, resamples, seed)
    draws = draws[np.isfinite(draws)]
    se = float(draws.std(ddof=1))
    low, high = (float(v) for v in np.percentile(draws, [2.5, 97.5]))
    w = weights_for(t, ps, "overlap" if method == "overlap" else "ipw", estimand)
    diagnostics = balance_diagnostics(x, t, w, ps, estimate, se, y)
    label = "ato" if method == "overlap" else estimand
    variance = (
        f"bootstrap refitting the propensity model ({describe(y.shape[0], resamples, seed)}, percentile interval)"
    )
    return Estimate(estimate, low, high, se, label, method, variance, int(t.sum()), int((1 - t).sum()), diagnostics)


def estimate_effect(
    y: np.ndarray,
    t: np.ndarray,
    x: np.ndarray,
    method: Method,
    estimand: Estimand = "att",
    resamples: int = 1000,
    seed: int = 0,
    k: int = 1,
    caliper: float = 0.2,
    replace: bool = True,
) -> Estimate:
    if method == "match":
        if estimand != "att":
            raise EstimationError("matching estimates the ATT only; use ipw, overlap or aipw for the ATE")
        return match(y, t, x, k=k, caliper=caliper, replace=replace, resamples=resamples, seed=seed)
    return weighting(y, t, x, method, estimand, resamples, seed)
