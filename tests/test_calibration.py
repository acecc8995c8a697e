"""Empirical calibration with negative controls: hand-computed cases and the reference package's numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pipelines.impact.calibration import (
    SystematicError,
    calibrate_difference,
    calibrate_interval,
    composite_systematic_error,
    difference_from_ratio,
    expected_absolute_systematic_error,
    fit_spread,
    fit_systematic_error,
)
from pipelines.impact.crossfit import (
    Learners,
    crossfit_outcome,
    crossfit_propensity,
    doubly_robust_att,
    log_ratio_difference_se,
    proportional_outcome,
)
from pipelines.impact.gate import calibration_checks
from pipelines.impact.spec import Thresholds
from pipelines.impact.weights import WeightRule

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


def test_the_spread_around_a_given_mean_is_the_maximum_of_the_likelihood() -> None:
    log_rr = np.array([0.4, -0.3, 0.15, 0.05, -0.2, 0.6])
    se = np.array([0.1, 0.15, 0.2, 0.1, 0.12, 0.25])
    sd = fit_spread(0.1, log_rr, se)
    grid = np.linspace(0, 1, 100_001)
    likelihood = [np.sum(stats.norm.logpdf(log_rr, 0.1, np.sqrt(g**2 + se**2))) for g in grid[::100]]
    assert sd == pytest.approx(float(grid[::100][int(np.argmax(likelihood))]), abs=1e-3)
    # Controls that agree within their random errors: no spread at all.
    assert fit_spread(0.0, np.array([0.01, -0.02, 0.0]), np.full(3, 0.3)) == 0.0


def test_the_composite_gives_the_mean_and_the_controls_one_by_one_the_spread() -> None:
    log_rr, se = np.array([0.5, -0.4, 0.3, np.nan, 0.2]), np.array([0.3, 0.3, 0.4, 0.3, np.inf])
    error = composite_systematic_error(0.12, 0.07, log_rr, se)
    assert (error.mean, error.mean_se, error.controls) == (0.12, 0.07, 3)
    assert error.sd == pytest.approx(fit_spread(0.12, log_rr[:3], se[:3]))


def test_the_calibrated_difference_by_hand() -> None:
    error = SystematicError(mean=0.3, sd=0.2, controls=6, mean_se=0.1)
    calibrated = calibrate_difference(0.1, error, difference_se=0.15)
    assert calibrated.log_rr == pytest.approx(-0.2)
    assert calibrated.se == pytest.approx(0.25)
    assert (calibrated.ci_low, calibrated.ci_high) == pytest.approx((-0.2 - 1.959964 * 0.25, -0.2 + 1.959964 * 0.25))


def test_ease_is_judged_only_when_the_controls_can_detect_an_error_of_the_threshold() -> None:
    limits = Thresholds(max_ease=0.25)
    informative = SystematicError(mean=0.3, sd=0.0, controls=6, mean_se=0.08)  # detects 0.224 <= 0.25
    rare = SystematicError(mean=0.3, sd=0.0, controls=6, mean_se=0.10)  # detects only 0.28
    assert informative.ease_judged(0.25)
    assert not rare.ease_judged(0.25)
    judged = {c.name: c for c in calibration_checks(limits, 6, informative)}
    assert not judged["expected_absolute_systematic_error"].passed
    unjudged = {c.name: c for c in calibration_checks(limits, 6, rare)}
    assert set(unjudged) == {"negative_controls_estimated"}
    always = {c.name for c in calibration_checks(Thresholds(ease_when_detectable=False), 6, rare)}
    assert "expected_absolute_systematic_error" in always
    assert {c.name for c in calibration_checks(limits, 6, None)} == {
        "negative_controls_estimated",
        "expected_absolute_systematic_error",
    }


def test_a_controls_rate_is_its_share_of_the_reference_rate_fitted_on_the_other_folds() -> None:
    t = np.array([0, 0, 0, 0, 1, 1])
    fold = np.array([0, 0, 1, 1, 0, 1])
    reference = np.array([1.0, 2.0, 1.0, 1.0, 3.0, 2.0])
    exposure = np.array([1.0, 1.0, 2.0, 1.0, 1.0, 1.0])
    total = np.array([1.0, 0.0, 3.0, 0.0, 5.0, 5.0])
    # Fold 0 is scored from fold 1's comparison rows: 3 events over 2 x 1 + 1 x 1 = 3 expected -> 1.0;
    # fold 1 from fold 0's: 1 event over 1 + 2 = 3 expected -> 1/3. Treated rows never count.
    expected = np.array([1.0, 2.0, 1 / 3, 1 / 3, 3.0, 2 / 3])
    assert proportional_outcome(total, exposure, t, reference, fold) == pytest.approx(expected)


def _confounded_world(seed: int, n: int) -> tuple[np.ndarray, ...]:
    """An unobserved frailty drives enrolment and every admission; a control outcome shares it and is never
    changed by care management (rate ratio 1), the main outcome's true rate ratio is 0.75."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.normal(size=n), rng.random(n) < 0.4]).astype(float)
    frailty = rng.gamma(4.0, 0.25, n)
    t = (rng.random(n) < 1 / (1 + np.exp(-(-0.3 + 0.8 * x[:, 0] + 0.5 * x[:, 1] + 1.2 * (frailty - 1))))).astype(int)
    exposure = rng.uniform(0.25, 1.0, n)
    risk = exposure * np.exp(-0.5 + 0.5 * x[:, 0] + 0.3 * x[:, 1]) * frailty
    y = rng.poisson(risk * np.where(t == 1, 0.75, 1.0)).astype(float)
    control = rng.poisson(0.3 * risk).astype(float)
    return y, control, exposure, t, x


def _main_and_control(rows: np.ndarray, seed: int, world: tuple[np.ndarray, ...]) -> tuple[float, float, float, float]:
    y, control, exposure, t, x = (a[rows] for a in world)
    nuisance = crossfit_propensity(t, x, Learners(learner="parametric", folds=5, seed=seed))
    m0 = crossfit_outcome(y, exposure, t, x, nuisance, "poisson")
    main = doubly_robust_att(y, exposure, t, nuisance.propensity, m0, WeightRule(), 1000.0)
    m_control = proportional_outcome(control, exposure, t, m0, nuisance.fold)
    found = doubly_robust_att(control, exposure, t, nuisance.propensity, m_control, WeightRule(), 1000.0)
    assert main.log_ratio is not None
    assert found.log_ratio is not None
    assert main.log_ratio_se is not None
    assert found.log_ratio_se is not None
    difference_se = log_ratio_difference_se(main, found)
    assert difference_se is not None
    return main.log_ratio, found.log_ratio, difference_se, math.hypot(main.log_ratio_se, found.log_ratio_se)


def test_calibrating_on_a_control_removes_a_shared_unmeasured_confounder_with_an_honest_interval() -> None:
    """The uncalibrated estimate is biased by the frailty nobody records; the main log rate ratio minus the
    control's is not, and the joint influence function gives its standard error (checked against a bootstrap
    that refits everything)."""
    world = _confounded_world(3, 4000)
    everyone = np.arange(world[0].shape[0])
    main, control, difference_se, _ = _main_and_control(everyone, 0, world)
    truth = math.log(0.75)
    assert main - truth > 2.5 * 0.05  # the uncalibrated estimate is off by the confounder
    assert abs(main - control - truth) < 1.96 * difference_se
    rng = np.random.default_rng(4)
    draws = []
    for b in range(120):
        rows = np.asarray(rng.integers(0, everyone.shape[0], everyone.shape[0]))
        first, second, _, _ = _main_and_control(rows, b, world)
        draws.append(first - second)
    assert difference_se == pytest.approx(float(np.std(draws, ddof=1)), rel=0.2)
