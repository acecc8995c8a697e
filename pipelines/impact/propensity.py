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


def fit_logistic_many(x: np.ndarray, t: np.ndarray, weights: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """``fit_logistic`` for each row of ``weights`` (resamples x rows): coefficients, one row per resample.

    The same Newton steps on the same standardised scale, ridge and stopping rule as ``fit_logistic``, each
    resample stopping when its own step is below the tolerance; rows with weight 0 count as left out. What
    a loop of refits spends on small matrix products one by one is here one product for all resamples:
    each standardised design is the raw design times a resample's affine map ``A`` (``Z = X A``), so its
    Hessian ``A' (X' S X) A`` comes from the raw ``X' S X``, and those come for every resample at once
    from the products of pairs of columns (``X_i X_j``, one column per pair) times the resamples' weights.
    """
    n, p = x.shape
    k = p + 1
    resamples = weights.shape[0]
    raw = np.column_stack([np.ones(n), x])
    upper = np.triu_indices(k)
    pairs = raw[:, upper[0]] * raw[:, upper[1]]
    total = weights.sum(axis=1)
    mean = (weights @ x) / total[:, None]
    centre = x.mean(axis=0)
    spread = (weights @ (x - centre) ** 2) / total[:, None]
    variance = spread - (mean - centre) ** 2
    # A covariate constant in a resample keeps the scale 1 (as ``_design``), also when rounding leaves a hair.
    scale = np.where(variance > 1e-12 * np.maximum(spread, 1e-300), np.sqrt(np.maximum(variance, 0.0)), 1.0)
    scale = np.where(scale > 0, scale, 1.0)
    affine = np.zeros((resamples, k, k))
    affine[:, 0, 0] = 1.0
    affine[:, 0, 1:] = -mean / scale
    affine[:, np.arange(1, k), np.arange(1, k)] = 1.0 / scale
    beta = np.zeros((resamples, k))
    if start is not None:
        beta[:, 1:] = start[1:] * scale
        beta[:, 0] = start[0] + mean @ start[1:]
    ridge = RIDGE * np.eye(k)
    active = np.arange(resamples)
    for _ in range(MAX_ITERATIONS):
        a = affine[active]
        w = weights[active].T
        theta = np.einsum("bij,bj->bi", a, beta[active])
        p_hat = 1.0 / (1.0 + np.exp(-np.clip(raw @ theta.T, -30, 30)))
        gradient = np.einsum("bji,jb->bi", a, raw.T @ (w * (t[:, None] - p_hat))) - RIDGE * beta[active]
        packed = pairs.T @ (w * p_hat * (1 - p_hat))
        hessian_raw = np.empty((active.shape[0], k, k))
        hessian_raw[:, upper[0], upper[1]] = packed.T
        hessian_raw[:, upper[1], upper[0]] = packed.T
        hessian = np.transpose(a, (0, 2, 1)) @ hessian_raw @ a + ridge
        step = np.linalg.solve(hessian, gradient[:, :, None])[:, :, 0]
        beta[active] += step
        active = active[np.max(np.abs(step), axis=1) >= TOLERANCE]
        if active.shape[0] == 0:
            break
    slopes = beta[:, 1:] / scale
    return np.column_stack([beta[:, 0] - np.sum(slopes * mean, axis=1), slopes])


def linear_predictor(x: np.ndarray, beta: np.ndarray) -> np.ndarray:
    return np.clip(beta[0] + x @ beta[1:], -30, 30)


def scores(x: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Propensity scores of ``x`` under coefficients ``beta`` from ``fit_logistic``."""
    return 1.0 / (1.0 + np.exp(-linear_predictor(x, beta)))
