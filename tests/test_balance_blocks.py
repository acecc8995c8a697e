"""The balance statistics computed block by block (``diagnostics._arm_moments``) are the floats numpy gives on
each arm copied out whole, bit for bit: the diagnostics a study publishes cannot move by a last digit."""

import numpy as np
import pytest

from pipelines.impact import diagnostics
from pipelines.impact.diagnostics import _balance


def _reference(x: np.ndarray, t: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The statistics as they were computed on whole-arm copies (before the blocks), for comparison."""

    def varies(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
        kept = values[weights > 0]
        return np.zeros(values.shape[1], dtype=bool) if kept.shape[0] == 0 else np.ptp(kept, axis=0) > 0

    def mean_var(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = np.average(values, axis=0, weights=weights)
        return mean, np.average((values - mean) ** 2, axis=0, weights=weights)

    treated = t == 1
    x1, x0, w1, w0 = x[treated], x[~treated], w[treated], w[~treated]
    once1, once0 = np.ones(x1.shape[0]), np.ones(x0.shape[0])
    spread = varies(x1, once1) | varies(x0, once0)
    pooled = np.sqrt((x1.var(axis=0) + x0.var(axis=0)) / 2)
    pooled = np.where(spread & (pooled > 0), pooled, 1.0)
    unweighted = (np.average(x1, axis=0, weights=once1) - np.average(x0, axis=0, weights=once0)) / pooled
    (m1, v1), (m0, v0) = mean_var(x1, w1), mean_var(x0, w0)
    varies1, varies0 = varies(x1, w1), varies(x0, w0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(varies0, v1 / np.where(varies0, v0, 1.0), np.where(varies1, np.inf, np.nan))
    ratio = np.where(varies0 & ~varies1, 0.0, ratio)
    return unweighted, (m1 - m0) / pooled, ratio


@pytest.mark.parametrize("seed", range(24))
def test_blocks_give_the_whole_arm_floats(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(seed)
    monkeypatch.setattr(diagnostics, "BALANCE_BLOCK_ROWS", int(rng.choice([7, 64, 2048])))
    n = int(rng.choice([3, 64, 65, 1000, 5001]))
    k = int(rng.choice([1, 2, int(rng.integers(3, 28))]))  # one column: numpy sums it pairwise
    # Magnitudes far apart, so that any other order of the additions shows in the last digits.
    x = rng.standard_normal((n, k)) * 10 ** rng.uniform(-6, 9, k) + rng.uniform(-1e7, 1e7, k)
    if k > 2:
        x[:, 0] = 3.0  # constant everywhere
        x[:, 1] = rng.integers(0, 3, n)  # a flag or count, as most covariates
    if seed % 3 == 0:
        x = np.asfortranarray(x)  # as the study's covariate matrix; the DiD's design and subsets are C-ordered
    t = (rng.random(n) < rng.uniform(0.05, 0.9)).astype(int)
    t[:2] = [0, 1]
    w = rng.exponential(1.0, n) * 10 ** rng.uniform(-3, 3)
    if seed % 2:
        w[rng.random(n) < 0.3] = 0.0  # trimmed rows: out of the weighted statistics
    for found, expected in zip(_balance(x, t, w), _reference(x, t, w), strict=True):
        assert found.tobytes() == expected.tobytes()


def test_an_arm_without_weight_is_refused_as_numpy_refuses_it() -> None:
    x = np.arange(12.0).reshape(6, 2)
    t = np.array([1, 1, 1, 0, 0, 0])
    with pytest.raises(ZeroDivisionError):
        _balance(x, t, np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0]))


def test_a_subgroup_read_in_place_is_the_subgroup_copied_out() -> None:
    rng = np.random.default_rng(4)
    x = np.asfortranarray(rng.standard_normal((3000, 5)) * 1e4)
    rows = np.flatnonzero(rng.random(3000) < 0.4)
    t = (rng.random(rows.shape[0]) < 0.3).astype(int)
    w = rng.exponential(1.0, rows.shape[0])
    for found, expected in zip(_balance(x, t, w, rows), _balance(x[rows], t, w), strict=True):
        assert found.tobytes() == expected.tobytes()
