"""Logistic regression for propensity scores, by iteratively reweighted least squares.

Small and dependency-free on purpose: the bootstrap refits it a thousand times, with
resampling weights, on standardised covariates (so Newton steps are well conditioned).
"""

from __future__ import annotations

import numpy as np

MAX_ITERATIONS = 50
TOLERANCE = 1e-8
RIDGE = 1e-6
"""A whisper of ridge keeps the Hessian invertible under perfect separation."""


def _design(x: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intercept and standardised covariates; with frequency ``weights`` (rows per cell), the same
    standardisation as the rows themselves would get."""
    mean = np.average(x, axis=0, weights=weights)
    scale = np.sqrt(np.average((x - mean) ** 2, axis=0, weights=weights))
    scale = np.where(scale > 0, scale, 1.0)
    return np.column_stack([np.ones(x.shape[0]), (x - mean) / scale]), mean, scale


def fit_logistic(
    x: np.ndarray, t: np.ndarray, weights: np.ndarray | None = None, start: np.ndarray | None = None
) -> np.ndarray:
    """Coefficients (intercept first) on the original covariate scale.

    ``start``: coefficients to start from (a bootstrap refit starts from the data's fit and
    converges in a few steps instead of eight or more).
    """
    design, mean, scale = _design(x, weights)
    w = np.ones(x.shape[0]) if weights is None else weights
    beta = np.zeros(design.shape[1])
    if start is not None:
        beta[1:] = start[1:] * scale
        beta[0] = start[0] + float(np.sum(start[1:] * mean))
    for _ in range(MAX_ITERATIONS):
        eta = np.clip(design @ beta, -30, 30)
        p = 1.0 / (1.0 + np.exp(-eta))
        gradient = design.T @ (w * (t - p)) - RIDGE * beta
        hessian = (design * (w * p * (1 - p))[:, None]).T @ design + RIDGE * np.eye(design.shape[1])
        step = np.linalg.solve(hessian, gradient)
        beta = beta + step
        if np.max(np.abs(step)) < TOLERANCE:
            break
    slopes = beta[1:] / scale
    intercept = beta[0] - float(np.sum(slopes * mean))
    return np.concatenate([[intercept], slopes])


def linear_predictor(x: np.ndarray, beta: np.ndarray) -> np.ndarray:
    return np.clip(beta[0] + x @ beta[1:], -30, 30)


def scores(x: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Propensity scores of ``x`` under coefficients ``beta`` from ``fit_logistic``."""
    return 1.0 / (1.0 + np.exp(-linear_predictor(x, beta)))
