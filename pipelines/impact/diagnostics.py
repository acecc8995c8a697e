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


BALANCE_BLOCK_ROWS = 2048
"""Rows of an arm the balance statistics go through at a time: a block of 26 covariates (416 KB) stays in the
processor's cache through every statistic computed on it, where whole-arm temporaries (200 MB each at a million
rows) went to memory and back once per statistic."""


@dataclass
class _ArmMoments:
    """An arm's per-covariate statistics: unweighted mean and (population) variance, weighted mean and variance,
    and whether the values vary, over all the arm's rows and over those with a positive weight."""

    mean: np.ndarray
    variance: np.ndarray
    weighted_mean: np.ndarray
    weighted_variance: np.ndarray
    varies: np.ndarray
    varies_weighted: np.ndarray
    """Decided on the values, not on a variance: a constant column's weighted variance is a rounding residue
    (1e-33) as often as it is 0, and a ratio of residues is noise (a ratio of 0 refused subgroups where a GIR
    indicator is constant by definition)."""


class _RowSum:
    """Per-column sums of the rows given block after block, each row added to the total in the rows' order: the
    floats numpy gives summing a C-ordered matrix of two columns or more over its rows at once (``m.sum(axis=0)``:
    one row after the other into the total), whatever the blocks. Each block is written into ``rows(count)``, then
    ``add``-ed."""

    def __init__(self, columns: int, block_rows: int) -> None:
        self._buffer = np.empty((block_rows + 1, columns))  # row 0: the total so far, then the block's rows
        self._started = False

    def rows(self, count: int) -> np.ndarray:
        return self._buffer[1 : count + 1]

    def add(self, count: int) -> None:
        if count == 0:
            return
        # The total so far as the first row: its sum goes on exactly from where the previous block ended.
        first = 0 if self._started else 1
        total = np.add.reduce(self._buffer[first : count + 1], axis=0)
        self._buffer[0] = total
        self._started = True

    @property
    def total(self) -> np.ndarray:
        return self._buffer[0].copy()


def _weight_total(w: np.ndarray) -> np.ndarray:
    """The weights' sum as ``np.average(m, axis=0, weights=w)`` takes it (the weights as a column, summed),
    refusing weights that sum to zero as it does."""
    total = w.reshape(-1, 1).sum(axis=(0,), dtype=np.result_type(w.dtype, np.float64))
    if np.any(total == 0.0):
        raise ZeroDivisionError("Weights sum to zero, can't be normalized")
    return total


def _arm_moments(x: np.ndarray, rows: np.ndarray, w: np.ndarray) -> _ArmMoments:
    """``_ArmMoments`` of the rows ``rows`` of ``x`` (weights ``w``, one per row taken), block by block
    (``BALANCE_BLOCK_ROWS``): the same floats as ``x[rows].mean(axis=0)``, ``.var(axis=0)``, ``np.average`` with
    weights ``w`` and of the weighted squared deviations, and ``np.ptp(...) > 0`` over all and over the weighted
    rows, computed on the whole arm copied out (each is a sum of the rows in order, or a maximum and minimum)."""
    n, columns = rows.shape[0], x.shape[1]
    if n == 0:  # refused as ``np.average`` refuses an empty arm
        raise ZeroDivisionError("Weights sum to zero, can't be normalized")
    weighted_total = _weight_total(w)
    # One covariate: numpy sums a single column pairwise, not row after row, so its rows go in one block (a
    # column of a million rows is 8 MB: no cache to save).
    block_rows = max(1, n if columns == 1 else min(BALANCE_BLOCK_ROWS, n))
    sums, weighted_sums = _RowSum(columns, block_rows), _RowSum(columns, block_rows)
    high, low = np.full(columns, -np.inf), np.full(columns, np.inf)
    high_weighted, low_weighted = high.copy(), low.copy()
    carried_any = False
    for start in range(0, n, block_rows):
        block, weights = x[rows[start : start + block_rows]], w[start : start + block_rows]
        count = block.shape[0]
        np.multiply(block, 1.0, out=sums.rows(count))
        np.multiply(block, weights[:, None], out=weighted_sums.rows(count))
        sums.add(count)
        weighted_sums.add(count)
        np.maximum(high, block.max(axis=0), out=high)
        np.minimum(low, block.min(axis=0), out=low)
        carried = weights > 0
        kept = block if carried.all() else block[carried]
        if kept.shape[0]:
            carried_any = True
            np.maximum(high_weighted, kept.max(axis=0), out=high_weighted)
            np.minimum(low_weighted, kept.min(axis=0), out=low_weighted)
    mean = sums.total / n
    weighted_mean = weighted_sums.total / weighted_total
    squares, weighted_squares = _RowSum(columns, block_rows), _RowSum(columns, block_rows)
    for start in range(0, n, block_rows):
        block, weights = x[rows[start : start + block_rows]], w[start : start + block_rows]
        count = block.shape[0]
        deviations = squares.rows(count)
        np.subtract(block, mean, out=deviations)
        np.multiply(deviations, deviations, out=deviations)
        weighted = weighted_squares.rows(count)
        np.subtract(block, weighted_mean, out=weighted)
        np.square(weighted, out=weighted)
        np.multiply(weighted, weights[:, None], out=weighted)
        squares.add(count)
        weighted_squares.add(count)
    varies_weighted = (high_weighted - low_weighted > 0) if carried_any else np.zeros(columns, dtype=bool)
    return _ArmMoments(
        mean=mean,
        variance=squares.total / n,
        weighted_mean=weighted_mean,
        weighted_variance=weighted_squares.total / weighted_total,
        varies=np.asarray(high - low > 0),
        varies_weighted=np.asarray(varies_weighted),
    )


def standardised_differences(x: np.ndarray, t: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SMD with the unweighted pooled standard deviation as denominator (so before/after compare), and the
    weighted variance ratio treated / comparison.

    A covariate that does not vary in either arm has no ratio (NaN): it carries no imbalance of spread
    (a difference of its values shows in the SMD). One that varies in one arm only has a ratio of 0
    (the treated arm constant) or infinity (the comparison arm constant): a real imbalance.
    """
    _, after, ratio = _balance(x, t, w)
    return after, ratio


def _balance(
    x: np.ndarray, t: np.ndarray, w: np.ndarray, rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The SMD with every row counted once, then ``standardised_differences`` with weights ``w``, from each arm's
    moments (``_arm_moments``: the rows read block by block, never a copy of an arm: a million rows of 26
    covariates are 200 MB a copy, and the statistics took 1.1 to 1.5 s a call when computed on such copies).
    ``rows``: the rows of ``x`` that ``t`` and ``w`` describe, in order (a subgroup's), when not all of them."""
    treated = t == 1
    rows1, rows0 = np.flatnonzero(treated), np.flatnonzero(~treated)
    if rows is not None:
        rows1, rows0 = rows[rows1], rows[rows0]
    w1, w0 = (w[treated], w[~treated]) if rows is not None else (w[rows1], w[rows0])
    arm1, arm0 = _arm_moments(x, rows1, w1), _arm_moments(x, rows0, w0)
    # A column constant in both arms has a pooled variance that is a rounding residue (1e-32), not always 0:
    # dividing by its root made an SMD of 0.5 out of nothing.
    spread = arm1.varies | arm0.varies
    pooled = np.sqrt((arm1.variance + arm0.variance) / 2)
    pooled = np.where(spread & (pooled > 0), pooled, 1.0)
    unweighted = (arm1.mean - arm0.mean) / pooled
    v1, v0 = arm1.weighted_variance, arm0.weighted_variance
    varies1, varies0 = arm1.varies_weighted, arm0.varies_weighted
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(varies0, v1 / np.where(varies0, v0, 1.0), np.where(varies1, np.inf, np.nan))
    ratio = np.where(varies0 & ~varies1, 0.0, ratio)
    return unweighted, (arm1.weighted_mean - arm0.weighted_mean) / pooled, ratio


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
    rows: np.ndarray | None = None,
) -> Diagnostics:
    """``rows``: the rows of ``x`` that the other arrays describe, in order (a subgroup's), when not all of them:
    the same figures as ``x[rows]`` given, without that copy of the subgroup's covariates."""
    before, after, ratio = _balance(x, t, w, rows)
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
