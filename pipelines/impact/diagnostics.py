"""Diagnostics of an estimate: what the gate (``gate.py``) judges it on.

Balance (standardised mean differences and variance ratios, before and after adjustment),
propensity overlap and equipoise, effective sample sizes, the minimum detectable effect,
and E-values. Nothing here decides anything: thresholds and pass/fail live in the gate only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

EQUIPOISE_RANGE = (0.3, 0.7)
"""Preference scores counted as in equipoise (Walker et al., 2013)."""


HISTOGRAM_BINS = 20


@dataclass
class Diagnostics:
    smd_before: list[float]
    smd_after: list[float]
    variance_ratio_after: list[float]
    max_abs_smd_after: float
    effective_sample_size: dict[str, float]
    propensity_range: dict[str, list[float]]
    equipoise_share: float
    minimum_detectable_effect: float
    e_value: float | None
    e_value_ci: float | None
    covariates: list[str] = field(default_factory=list)
    attrition: dict[str, int] = field(default_factory=dict)
    propensity_histogram: dict[str, list[int]] = field(default_factory=dict)
    """Episodes per propensity-score bin of width 1/HISTOGRAM_BINS, by arm: the overlap plot's data."""
    no_variance: list[bool] = field(default_factory=list)
    """Per covariate: constant in both arms (inside a subgroup defined by it, say): no variance ratio."""

    @property
    def without_variance(self) -> list[str]:
        """The covariates that vary in neither arm, by name (``covariate i`` without names)."""
        names = self.covariates or [f"covariate {i + 1}" for i in range(len(self.no_variance))]
        return [name for name, constant in zip(names, self.no_variance, strict=False) if constant]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _weighted_mean_var(values: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = np.average(values, axis=0, weights=w)
    # Squared in place: the same numbers as ``(values - mean) ** 2`` without a second temporary matrix.
    deviations = values - mean
    np.square(deviations, out=deviations)
    var = np.average(deviations, axis=0, weights=w)
    return mean, var


def varies(values: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per column: whether the values that carry weight are not all equal.

    Decided on the values, not on a weighted variance: a constant column's weighted variance is a rounding
    residue (1e-33) as often as it is 0, and a ratio of residues is noise (a ratio of 0 refused subgroups
    where a GIR indicator is constant by definition).
    """
    carried = w > 0
    kept = values if carried.all() else values[carried]  # no copy of the matrix when every row counts
    if kept.shape[0] == 0:
        return np.zeros(values.shape[1], dtype=bool)
    return np.asarray(np.ptp(kept, axis=0) > 0)


def standardised_differences(x: np.ndarray, t: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SMD with the unweighted pooled standard deviation as denominator (so before/after compare), and the
    weighted variance ratio treated / comparison.

    A covariate that does not vary in either arm has no ratio (NaN): it carries no imbalance of spread
    (a difference of its values shows in the SMD). One that varies in one arm only has a ratio of 0
    (the treated arm constant) or infinity (the comparison arm constant): a real imbalance.
    """
    _, after, ratio = _balance(x, t, w)
    return after, ratio


def _balance(x: np.ndarray, t: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The SMD with every row counted once, then ``standardised_differences`` with weights ``w``: the same
    figures as two calls, each arm's rows copied out once (a million rows of 26 covariates are 200 MB a
    copy) instead of once per statistic."""
    treated = t == 1
    x1, x0, w1, w0 = x[treated], x[~treated], w[treated], w[~treated]
    once1, once0 = np.ones(x1.shape[0]), np.ones(x0.shape[0])
    # A column constant in both arms has a pooled variance that is a rounding residue (1e-32), not always 0:
    # dividing by its root made an SMD of 0.5 out of nothing.
    spread = varies(x1, once1) | varies(x0, once0)
    pooled = np.sqrt((x1.var(axis=0) + x0.var(axis=0)) / 2)
    pooled = np.where(spread & (pooled > 0), pooled, 1.0)
    unweighted = (np.average(x1, axis=0, weights=once1) - np.average(x0, axis=0, weights=once0)) / pooled
    m1, v1 = _weighted_mean_var(x1, w1)
    m0, v0 = _weighted_mean_var(x0, w0)
    varies1, varies0 = varies(x1, w1), varies(x0, w0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(varies0, v1 / np.where(varies0, v0, 1.0), np.where(varies1, np.inf, np.nan))
    ratio = np.where(varies0 & ~varies1, 0.0, ratio)
    return unweighted, (m1 - m0) / pooled, ratio


def kish_ess(w: np.ndarray) -> float:
    return float(w.sum() ** 2 / np.sum(w**2)) if w.sum() > 0 else 0.0


def preference_score(ps: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Walker et al. (2013): the propensity score rescaled for the share treated."""
    share = t.mean()
    logit = np.log(ps / (1 - ps)) - np.log(share / (1 - share))
    return 1 / (1 + np.exp(-logit))


def e_value(ratio: float) -> float:
    """VanderWeele and Ding (2017) E-value of a risk ratio (symmetric: a ratio below 1 counts as its inverse; a
    ratio of 0 is infinitely strong)."""
    if ratio == 0:
        return math.inf
    rr = ratio if ratio >= 1 else 1 / ratio
    return float(rr + np.sqrt(rr * (rr - 1)))


def e_values_for_difference(estimate: float, se: float, outcome_sd: float) -> tuple[float | None, float | None]:
    """E-values for a difference in means, via the approximate risk ratio exp(0.91 d).

    Undefined (None) when the comparison outcomes do not vary: a difference has no standardised size
    then. The ratio is built from |d| (the E-value is symmetric), so a spread that is zero up to
    rounding (values equal to the last bit) gives an infinite E-value, later stored as none, rather
    than exp(-huge) = 0 and a division by zero, which crashed a run of the small federation.
    """
    if not np.isfinite(outcome_sd) or outcome_sd <= 0 or not np.isfinite(se):
        return None, None
    d = abs(estimate) / outcome_sd
    low, high = estimate - 1.959964 * se, estimate + 1.959964 * se
    with np.errstate(over="ignore"):
        point = e_value(float(np.exp(0.91 * d)))
        crosses = low <= 0 <= high
        nearest = min(abs(low), abs(high)) / outcome_sd
        limit = 1.0 if crosses else e_value(float(np.exp(0.91 * nearest)))
    return point, limit


SAME_UP_TO_ROUNDING = 1e-9
"""Outcomes whose range is this small relative to their size are equal, but for rounding (0.1 + 0.2 and 0.3)."""


def outcome_spread(y: np.ndarray) -> float:
    """The standard deviation of outcomes; 0 when they are all equal up to rounding (np.std would give a
    residue of 1e-17 and an E-value of a standardised difference of 10^16)."""
    if y.size == 0:
        return math.nan
    if float(np.ptp(y)) <= SAME_UP_TO_ROUNDING * float(np.max(np.abs(y))):
        return 0.0
    return float(np.std(y))


def balance_diagnostics(
    x: np.ndarray,
    t: np.ndarray,
    w: np.ndarray,
    ps: np.ndarray,
    estimate: float,
    se: float,
    y: np.ndarray,
    covariates: list[str] | None = None,
) -> Diagnostics:
    before, after, ratio = _balance(x, t, w)
    treated = t == 1
    preference = preference_score(np.clip(ps, 1e-6, 1 - 1e-6), t)
    in_equipoise = (preference >= EQUIPOISE_RANGE[0]) & (preference <= EQUIPOISE_RANGE[1])
    equipoise = float(min(in_equipoise[treated].mean(), in_equipoise[~treated].mean()))
    point_e, limit_e = e_values_for_difference(estimate, se, outcome_spread(y[~treated]))
    max_smd = float(np.max(np.abs(after))) if after.size else 0.0
    return Diagnostics(
        smd_before=[float(v) for v in before],
        smd_after=[float(v) for v in after],
        variance_ratio_after=[float(v) for v in ratio],
        no_variance=[bool(v) for v in np.isnan(ratio)],
        max_abs_smd_after=max_smd,
        effective_sample_size={"treated": kish_ess(w[treated]), "control": kish_ess(w[~treated])},
        propensity_range={
            "treated": [float(ps[treated].min()), float(ps[treated].max())],
            "control": [float(ps[~treated].min()), float(ps[~treated].max())],
        },
        equipoise_share=equipoise,
        minimum_detectable_effect=float(2.8 * se),
        e_value=point_e,
        e_value_ci=limit_e,
        covariates=covariates or [],
        propensity_histogram={
            "treated": np.histogram(ps[treated], bins=HISTOGRAM_BINS, range=(0, 1))[0].tolist(),
            "control": np.histogram(ps[~treated], bins=HISTOGRAM_BINS, range=(0, 1))[0].tolist(),
        },
    )
