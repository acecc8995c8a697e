"""Log-linear (Poisson) outcome model for counts and sums over an exposure.

Used by the doubly robust ratio estimator: the expected count of a control-like person is
``exposure * exp(x @ beta)``. Fitted by IRLS on standardised covariates, like the propensity
model, because the bootstrap refits it in every resample. Quasi-Poisson: the outcome may be
any non-negative sum (days without help over ruptures), not only a count.
"""

from __future__ import annotations

import numpy as np

from pipelines.impact.propensity import MAX_ITERATIONS, TOLERANCE, _design

SLOPE_RIDGE = 1.0
"""A weak penalty on standardised slopes: negligible for thousands of rows, and it keeps the fit
finite when a covariate level has no events at all (the MLE would run off to minus infinity).
The doubly robust residual term corrects what the shrinkage costs."""


def fit_poisson(x: np.ndarray, y: np.ndarray, exposure: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Coefficients (intercept first) on the original covariate scale, for log E[y] = log(exposure) + x @ beta.

    ``rows``: how many rows each line stands for, when ``y`` and ``exposure`` are cell totals.
    """
    design, mean, scale = _design(x, rows)
    beta = np.zeros(design.shape[1])
    beta[0] = np.log(max(float(y.sum()), 1e-9) / float(exposure.sum()))
    penalty = np.full(design.shape[1], SLOPE_RIDGE)
    penalty[0] = 1e-9
    for _ in range(MAX_ITERATIONS):
        mu = exposure * np.exp(np.clip(design @ beta, -30, 30))
        gradient = design.T @ (y - mu) - penalty * beta
        hessian = (design * mu[:, None]).T @ design + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        beta = beta + step
        if np.max(np.abs(step)) < TOLERANCE:
            break
    slopes = beta[1:] / scale
    return np.concatenate([[beta[0] - float(np.sum(slopes * mean))], slopes])


def expected(x: np.ndarray, beta: np.ndarray, exposure: np.ndarray) -> np.ndarray:
    return exposure * np.exp(np.clip(beta[0] + x @ beta[1:], -30, 30))
