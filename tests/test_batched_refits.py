"""Bootstrap refits done together give what the refits one by one give: the same resamples, the same fits.

The one-by-one versions are the oracles: ``fit_logistic`` for ``fit_logistic_many``, ``bootstrap_draws``
for ``batched_bootstrap_draws``, and the curves' per-resample ``_arm_curves`` for the batched curves.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.impact.cells import group_cells
from pipelines.impact.curves import COMPETING, EVENT, _arm_curves, cumulative_incidence_curves
from pipelines.impact.estimators import _point, bootstrap
from pipelines.impact.propensity import fit_logistic, fit_logistic_many
from pipelines.impact.resampling import Draw, batched_bootstrap_draws, bootstrap_draws


def _data(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.normal(80, 8, n).round(), rng.integers(0, 2, (n, 3)), rng.poisson(1.0, (n, 2))]).astype(
        float
    )
    logit = 0.04 * (x[:, 0] - 80) + 0.8 * x[:, 1] - 0.5 * x[:, 4]
    t = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return t, x


def test_fitting_many_weightings_together_gives_each_ones_fit() -> None:
    t, x = _data(400)
    rng = np.random.default_rng(0)
    weights = rng.multinomial(400, np.full(400, 1 / 400), size=30).astype(float)
    # A resample in which a covariate is constant among the rows it keeps (left out: weight 0).
    weights[0, x[:, 1] == 1] = 0.0
    start = fit_logistic(x, t, np.ones(400))
    together = fit_logistic_many(x, t, weights, start)
    for w, fit in zip(weights, together, strict=True):
        kept = w > 0
        alone = fit_logistic(x[kept], t[kept], w[kept])
        assert fit == pytest.approx(alone, rel=1e-7, abs=1e-9)
    # Without a start (Newton from zero, as a single fit) the same answers.
    assert fit_logistic_many(x, t, weights[1:4]) == pytest.approx(together[1:4], rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("little", [False, True])
@pytest.mark.parametrize("batch", [1, 7, 100])
def test_batched_draws_are_the_same_resamples(little: bool, batch: int) -> None:
    t, _ = _data(300)
    y = np.random.default_rng(1).normal(size=300)

    def mean_difference(rows: np.ndarray, weights: np.ndarray | None) -> float:
        w = np.ones(rows.shape[0]) if weights is None else weights
        treated = t[rows] == 1
        drawn = y[rows]
        return float(np.average(drawn[treated], weights=w[treated]) - np.average(drawn[~treated], weights=w[~treated]))

    def together(draws: list[Draw]) -> np.ndarray:
        return np.array([mean_difference(rows, weights) for rows, weights in draws])

    point = mean_difference(np.arange(300), None)
    one_by_one = bootstrap_draws(t, mean_difference, point, 45, seed=9, little=little)
    batched = batched_bootstrap_draws(t, together, np.asarray(point), 45, seed=9, little=little, batch=batch)
    assert batched.tolist() == one_by_one.tolist()


@pytest.mark.parametrize("rows", [500, 60_000])
def test_batched_curves_equal_the_curves_refitted_one_resample_at_a_time(rows: int) -> None:
    t, x = _data(rows, seed=5)
    rng = np.random.default_rng(6)
    days = rng.integers(0, 60, rows)
    status = rng.choice([0, EVENT, COMPETING], rows, p=[0.5, 0.35, 0.15])
    horizon, resamples, seed = 59, 40, 11
    curves = cumulative_incidence_curves(days, status, t, x, horizon, resamples, seed, step=1)
    cells = group_cells(t, x)
    point = _arm_curves(days, status, t, cells, np.arange(rows), horizon)

    def refit(drawn: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
        return _arm_curves(days, status, t, cells, drawn, horizon, weights)

    draws = np.clip(bootstrap_draws(t, refit, point, resamples, seed), 0.0, 1.0)
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    for index, label in ((0, "care_managed"), (1, "comparison_weighted")):
        curve = curves.filter(curves["curve"] == label)
        assert curve["cumulative_incidence"].to_numpy() == pytest.approx(point[index], abs=1e-12)
        assert curve["ci_low"].to_numpy() == pytest.approx(low[index], abs=1e-9)
        assert curve["ci_high"].to_numpy() == pytest.approx(high[index], abs=1e-9)


@pytest.mark.parametrize(("method", "rows"), [("aipw", 400), ("ipw", 400), ("overlap", 60_000)])
def test_weighting_bootstrap_equals_the_refits_one_resample_at_a_time(method: str, rows: int) -> None:
    t, x = _data(rows, seed=8)
    y = x[:, 0] / 10 + 2.0 * t + np.random.default_rng(2).normal(size=rows)
    cells = group_cells(t, x)

    def refit(drawn: np.ndarray | None, weights: np.ndarray | None) -> float:
        counts, (sums,) = cells.totals(drawn, y, weights=weights)
        keep = counts > 0
        return _point(sums[keep] / counts[keep], cells.t[keep], cells.x[keep], method, "att", counts[keep])

    expected = bootstrap_draws(t, refit, refit(None, None), 30, seed=4)
    assert bootstrap(y, t, x, method, "att", 30, seed=4) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_cells_with_a_leading_column_are_those_of_the_stacked_matrix() -> None:
    """Cross-fitting groups on (fold, covariates) without stacking them into a second matrix: the same cells,
    in the same order, with the same covariate values."""
    t, x = _data(5_000, seed=12)
    fold = np.asarray(np.random.default_rng(13).integers(0, 5, t.shape[0]))
    stacked = group_cells(t, np.column_stack([fold, x]))
    led = group_cells(t, x, leading=fold)
    assert np.array_equal(led.t, stacked.t)
    assert np.array_equal(led.index, stacked.index)
    assert np.array_equal(led.x, stacked.x)
    assert led.x.dtype == stacked.x.dtype
    assert led.x.flags["F_CONTIGUOUS"] == stacked.x.flags["F_CONTIGUOUS"]


def test_cells_with_a_trailing_column_are_those_of_the_stacked_matrix() -> None:
    """A difference-in-differences design groups on (fold, covariates, baseline rate) without stacking the rate
    onto a copy of the covariates: the same cells, in the same order, with the same values."""
    t, x = _data(5_000, seed=14)
    rng = np.random.default_rng(15)
    fold = np.asarray(rng.integers(0, 5, t.shape[0]))
    rate = np.asarray(rng.poisson(0.7, t.shape[0]) / (20 / 12))
    stacked = group_cells(t, np.column_stack([x, rate]), leading=fold)
    trailed = group_cells(t, x, leading=fold, trailing=rate)
    assert np.array_equal(trailed.t, stacked.t)
    assert np.array_equal(trailed.index, stacked.index)
    assert trailed.x.tobytes() == stacked.x.tobytes()
    assert trailed.x.dtype == stacked.x.dtype
    assert trailed.x.flags["F_CONTIGUOUS"] == stacked.x.flags["F_CONTIGUOUS"]
