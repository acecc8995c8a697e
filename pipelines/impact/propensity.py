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


def _design(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    return np.column_stack([np.ones(x.shape[0]), (x - mean) / scale]), mean, scale


def fit_logistic(x: np.ndarray, t: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Coefficients (intercept first) on the original covariate scale."""
    design, mean, scale = _design(x)
    w = np.ones(x.shape[0]) if weights is None else weights
    beta = np.zeros(design.shape[1])
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
