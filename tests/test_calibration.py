"""Empirical calibration with negative controls: hand-computed cases and the reference package's numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pipelines.impact.calibration import (
    SystematicError,
    calibrate_interval,
    difference_from_ratio,
    expected_absolute_systematic_error,
    fit_systematic_error,
)

# OHDSI EmpiricalCalibration 3.1.4 on its `sccs` data set: fitNull on the negative controls gives
# mean 0.792158, SD 0.283436; calibrateConfidenceInterval(positive, convertNullToErrorModel(null))
# gives log RR -0.0595345, 95% interval -0.6335409 to 0.5144719, standard error 0.2928658 (the
# package's own test suite pins these). The positive control's log RR and standard error follow
# from them: 0.7326235 and 0.0737184.
SCCS_NULL = SystematicError(mean=0.792158, sd=0.283436, controls=46)
SCCS_POSITIVE = (0.7326234850761176, 0.07371841459580092)


def test_the_calibrated_interval_reproduces_the_reference_package() -> None:
    calibrated = calibrate_interval(*SCCS_POSITIVE, SCCS_NULL, mean_uncertainty=False)
    assert calibrated.log_rr == pytest.approx(-0.0595345149, abs=1e-6)
    assert calibrated.ci_low == pytest.approx(-0.6335409149, abs=1e-5)
    assert calibrated.ci_high == pytest.approx(0.5144718851, abs=1e-5)
    assert calibrated.se == pytest.approx(0.2928657896, abs=1e-6)


def test_ease_reproduces_the_reference_package() -> None:
    # The package's test: for the sccs null, EASE equals the null's mean to 1e-3 (the mean is ~2.8 SD from 0).
    assert expected_absolute_systematic_error(SCCS_NULL.mean, SCCS_NULL.sd) == pytest.approx(0.792158, abs=1e-3)
    assert expected_absolute_systematic_error(0.0, 0.0) == 0.0


def test_ease_is_the_mean_absolute_value_of_the_error_distribution() -> None:
    # Hand-computed: for mean 0, E|X| = sd * sqrt(2/pi); otherwise check against numerical integration.
    assert expected_absolute_systematic_error(0.0, 0.3) == pytest.approx(0.3 * math.sqrt(2 / math.pi))
    grid = np.linspace(-5, 5, 200_001)
    density = stats.norm.pdf(grid, 0.1, 0.2)
    numeric = float(np.sum(np.abs(grid) * density) * (grid[1] - grid[0]))
    assert expected_absolute_systematic_error(0.1, 0.2) == pytest.approx(numeric, rel=1e-6)
    assert expected_absolute_systematic_error(-0.4, 0.0) == pytest.approx(0.4)


def test_a_null_without_systematic_error_leaves_the_interval_as_it_was() -> None:
    calibrated = calibrate_interval(0.2, 0.1, SystematicError(0.0, 0.0, 8))
    assert (calibrated.ci_low, calibrated.ci_high) == pytest.approx((0.2 - 1.959964 * 0.1, 0.2 + 1.959964 * 0.1))


def test_the_interval_also_carries_the_uncertainty_of_the_fitted_mean() -> None:
    # Six controls with standard error 0.3 and no spread: the mean is known to 0.3 / sqrt(6).
    error = fit_systematic_error(np.array([0.1, -0.1, 0.05, -0.05, 0.0, 0.0]), np.full(6, 0.3))
    assert error.mean_se == pytest.approx(0.3 / math.sqrt(6))
    calibrated = calibrate_interval(0.2, 0.1, error)
    assert calibrated.se == pytest.approx(math.sqrt(0.1**2 + 0.3**2 / 6))


def test_the_fit_recovers_a_known_systematic_error() -> None:
    rng = np.random.default_rng(4)
    se = rng.uniform(0.05, 0.3, 2000)
    log_rr = rng.normal(0.15, 0.1, se.shape[0]) + rng.normal(0, se)
    fitted = fit_systematic_error(log_rr, se)
    assert fitted.mean == pytest.approx(0.15, abs=0.01)
    assert fitted.sd == pytest.approx(0.1, abs=0.01)
    assert fitted.controls == 2000


def test_the_fit_is_the_maximum_of_the_likelihood() -> None:
    # Five controls, by hand: the likelihood at the fit beats every point of a fine grid around it.
    log_rr = np.array([0.1, -0.2, 0.35, 0.05, 0.5])
    se = np.array([0.1, 0.2, 0.15, 0.3, 0.25])
    fitted = fit_systematic_error(log_rr, se)

    def loglik(mean: float, sd: float) -> float:
        return float(np.sum(stats.norm.logpdf(log_rr, mean, np.sqrt(sd**2 + se**2))))

    best = loglik(fitted.mean, fitted.sd)
    for mean in np.linspace(fitted.mean - 0.2, fitted.mean + 0.2, 41):
        for sd in np.linspace(max(fitted.sd - 0.2, 0), fitted.sd + 0.2, 41):
            assert loglik(mean, sd) <= best + 1e-9


def test_controls_that_agree_within_their_errors_show_no_spread() -> None:
    # Estimates closer together than their standard errors: the maximum is at sd = 0, and the
    # mean is the inverse-variance weighted mean.
    log_rr = np.array([0.01, -0.01, 0.0, 0.02, -0.02])
    se = np.full(5, 0.3)
    fitted = fit_systematic_error(log_rr, se)
    assert fitted.sd == 0.0
    assert fitted.mean == pytest.approx(0.0, abs=1e-12)


def test_a_calibrated_ratio_turns_back_into_the_study_unit() -> None:
    # Treated 300 per 1,000 person-years, rate ratio 0.75: the counterfactual is 400, the difference -100.
    assert difference_from_ratio(300.0, 0.75) == pytest.approx(-100.0)
