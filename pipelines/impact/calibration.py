"""Empirical calibration of intervals with negative controls (Schuemie et al., 2014 and 2018).

A negative-control outcome is one care management cannot change (admissions for cancer, say):
its true effect is no effect, so whatever the study's design estimates for it is **systematic
error** (unmeasured confounding, selection, measurement) plus random error. Fitting a normal
distribution N(mu, sigma^2) to the negative controls' estimates, each with its own standard
error, gives the design's systematic-error distribution; the main estimate's interval is then
shifted by mu and widened by sigma:

    each control:   log RR_j ~ N(mu, sigma^2 + se_j^2)       (maximum likelihood for mu, sigma >= 0)
    calibrated:     log RR - mu  +/-  1.96 sqrt(sigma^2 + se^2)

This is what OHDSI's EmpiricalCalibration package computes with ``fitNull`` then
``calibrateConfidenceInterval`` on ``convertNullToErrorModel(null)`` (an error model whose mean
and spread do not depend on the true effect, which is all that negative controls alone can
identify). ``tests/test_calibration.py`` reproduces the package's published numbers. One
addition, on by default: the interval is also widened by the standard error of the fitted mean
(``calibrate_interval``), because a handful of rare controls pin it down only loosely.

**Scale: the log rate ratio**, as Schuemie uses. Negative controls have very different base
rates (cancer admissions are rarer than all unplanned admissions): a confounder that makes
comparison people 20% less frail shifts every rate by about 20%, not by the same number of
admissions per 1,000 person-years. A systematic error learnt on rare outcomes transfers to the
main outcome as a ratio, not as a difference. The calibrated ratio interval is turned back into
the study's unit with the treated rate, which is observed: difference = treated x (1 - 1/RR).

**EASE**, the expected absolute systematic error E|X| for X ~ N(mu, sigma^2) (Schuemie et al.,
2020), sums up how much the design is off on a typical outcome; the gate requires it to stay
below a documented threshold.

**Rare controls: the composite and the joint influence function.** The outcomes care management
cannot influence are rare (a few admissions per 100 person-years each): in a federation of a few
thousand people each control's log rate ratio carries a standard error of 0.3 to 0.5, the fitted
mean is known to about +/- 0.17, and shifting the main estimate by it, then widening as if the two
were independent, made the published interval two to three times as wide as the uncalibrated one
(coverage 100%, not 95%) and its centre noisier than the error it removed (docs/validation.md).
Two changes, both fixed in advance:

* the **mean** systematic error is estimated on the **composite control** (every control's
  admissions together, estimated with the same design): the controls' events pooled, as
  precisely as they allow; the **spread** is the maximum-likelihood sigma of the individual
  controls around that mean (``fit_spread``);
* the calibrated estimate is the main log rate ratio minus the composite's, and its standard error
  comes from the **difference of their influence functions** (``calibrate_difference``): the
  main outcome and its controls are estimated on the same people with the same weights, so their
  errors are correlated (0.5 to 0.6 over generated federations) and the difference is more precise
  than the sum of the variances says.

**When EASE is judged.** EASE is judged only when the controls can detect a systematic error as large
as the threshold: ``DETECTABLE_MULTIPLIER`` (2.8: 80% power at 5%, two-sided) times the composite's
standard error at most ``max_ease`` (``ease_judged``). With fewer events, a point EASE above the
threshold is mostly noise (a quarter of sound studies refused in the first validation); the
calibrated interval still carries the controls' uncertainty, so nothing is hidden.

**The spread under a prior (issue 12, study versions that set ``calibration.spread_prior_scale``).** Five to
ten rare controls fit the spread at exactly 0 in two federations of three: the calibrated interval then
ignores every spread the controls cannot exclude, and false effects gather in those federations
(docs/validation.md, "Replay of calibration rules"). A study that sets a scale tau widens its calibrated
interval by the spread's **posterior root mean square** under a half-normal(tau) prior instead,
sqrt(E[sigma^2 | controls]) (``spread_posterior_rms``): the variance of the systematic error averaged over
what the controls leave uncertain. Uninformative controls give tau itself (E[sigma^2] = tau^2 under the
prior); controls scattered well beyond their errors give about their own spread. EASE stays the
maximum-likelihood one (a point estimate of the design's error, judged against ``max_ease`` as before), so
the gate's verdicts are those of the maximum-likelihood calibration and only the interval changes: the rule
that was replayed on validation rows (``replay.spread_prior_scaled``) is the rule the pipeline runs. A study
without the setting keeps the maximum-likelihood spread: older versions give the figures they gave.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from pipelines.impact.estimators import Z95

# scipy's statistics and optimisers are imported by the functions that use them: this module loads with every
# pipeline (the gate reads its constants), where scipy.stats alone cost 0.3-0.5 s of the start before any study
# ran; a run loads it while the suites validate (``threads.import_study_libraries``).

MIN_NEGATIVE_CONTROLS = 5
"""Fewer controls than this cannot estimate a spread: the gate refuses calibration from them."""
DETECTABLE_MULTIPLIER = 2.8
"""A systematic error of 2.8 standard errors is detected with 80% power by a two-sided test at 5%."""


@dataclass(frozen=True)
class SystematicError:
    mean: float
    sd: float
    """The maximum-likelihood spread (what EASE is computed from)."""
    controls: int
    mean_se: float = 0.0
    """Standard error of ``mean`` (observed information at the maximum): how well the controls pin it down."""
    spread_prior_scale: float | None = None
    """The study's half-normal prior scale on the spread, when it sets one (``with_spread_prior``)."""
    posterior_sd: float | None = None
    """The spread's posterior root mean square under that prior: what widens the calibrated interval."""

    @property
    def interval_sd(self) -> float:
        """The spread the calibrated interval is widened by: the fitted one, or under a prior the larger of the
        fitted and the posterior one. The prior counts what a few rare controls leave uncertain; it never narrows
        an interval below what the controls themselves show (a light-tailed prior would otherwise pull a spread
        the controls put at 1.9 down to about its own scale)."""
        return widening_spread(self.sd, self.posterior_sd)

    @property
    def expected_absolute_error(self) -> float:
        return expected_absolute_systematic_error(self.mean, self.sd)

    @property
    def minimum_detectable(self) -> float:
        """The smallest mean systematic error the controls detect with 80% power (two-sided, 5%)."""
        return DETECTABLE_MULTIPLIER * self.mean_se

    def ease_judged(self, max_ease: float) -> bool:
        """Whether the controls are informative enough for their EASE to be judged against ``max_ease``."""
        return self.minimum_detectable <= max_ease

    def as_json(self) -> dict[str, float]:
        # Without a prior the object is what it was before priors existed: older study versions reproduce
        # their diagnostics exactly.
        present = {k: v for k, v in asdict(self).items() if v is not None}
        return {
            **present,
            "ease": self.expected_absolute_error,
            "minimum_detectable_systematic_error": self.minimum_detectable,
        }

    @classmethod
    def from_json(cls, stored: dict[str, float]) -> SystematicError:
        """The systematic error as ``as_json`` wrote it (the derived keys left out)."""
        return cls(**{f.name: stored[f.name] for f in fields(cls) if f.name in stored})  # type: ignore[arg-type]


def fit_systematic_error(log_rr: np.ndarray, se: np.ndarray) -> SystematicError:
    """Maximum-likelihood N(mean, sd^2) of the systematic error behind the negative controls' estimates."""
    log_rr, se = np.asarray(log_rr, dtype=float), np.asarray(se, dtype=float)
    usable = np.isfinite(log_rr) & np.isfinite(se) & (se > 0)
    log_rr, se = log_rr[usable], se[usable]
    if log_rr.shape[0] == 0:
        raise ValueError("no negative control has a finite estimate and standard error")
    from scipy import optimize, stats  # late: see the note at the imports

    def negative_log_likelihood(params: np.ndarray) -> float:
        mean, log_sd = params
        spread = np.sqrt(np.exp(2 * log_sd) + se**2)
        return float(-np.sum(stats.norm.logpdf(log_rr, mean, spread)))

    # The likelihood is flat towards sd = 0: start from a moment estimate and polish.
    start_sd = max(float(np.std(log_rr)), 0.01)
    best = optimize.minimize(
        negative_log_likelihood,
        np.array([float(np.mean(log_rr)), math.log(start_sd)]),
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000},
    )
    mean, log_sd = best.x
    sd = math.exp(log_sd)
    if sd < 1e-6:  # the maximum sits on the boundary: no systematic spread beyond random error
        sd = 0.0
        weights = 1 / se**2
        mean = float(np.sum(weights * log_rr) / np.sum(weights))
    information = float(np.sum(1 / (sd**2 + se**2)))
    return SystematicError(float(mean), float(sd), int(log_rr.shape[0]), math.sqrt(1 / information))


def fit_spread(mean: float, log_rr: np.ndarray, se: np.ndarray) -> float:
    """Maximum-likelihood sigma of the controls' systematic errors around a given ``mean``:
    log RR_j ~ N(mean, sigma^2 + se_j^2), sigma >= 0 (0 when the controls vary no more than their
    random errors say)."""
    log_rr, se = np.asarray(log_rr, dtype=float), np.asarray(se, dtype=float)
    usable = np.isfinite(log_rr) & np.isfinite(se) & (se > 0)
    log_rr, se = log_rr[usable], se[usable]
    if log_rr.shape[0] == 0:
        return 0.0
    from scipy import optimize, stats  # late: see the note at the imports

    def negative_log_likelihood(sd: float) -> float:
        return float(-np.sum(stats.norm.logpdf(log_rr, mean, np.sqrt(sd**2 + se**2))))

    upper = max(float(np.max(np.abs(log_rr - mean))), 1e-3) * 2
    best = optimize.minimize_scalar(negative_log_likelihood, bounds=(0.0, upper), method="bounded",
                                    options={"xatol": 1e-8})  # fmt: skip
    sd = float(best.x)
    # The bounded search never lands exactly on 0: compare with the boundary itself.
    if sd < 1e-6 or negative_log_likelihood(0.0) <= negative_log_likelihood(sd):
        return 0.0
    return sd


def composite_systematic_error(
    composite_log_rr: float, composite_se: float, log_rr: np.ndarray, se: np.ndarray
) -> SystematicError:
    """The systematic-error distribution from the composite control (its mean, known to its standard error)
    and the individual controls' spread around it."""
    log_rr, se = np.asarray(log_rr, dtype=float), np.asarray(se, dtype=float)
    usable = int((np.isfinite(log_rr) & np.isfinite(se) & (se > 0)).sum())
    return SystematicError(composite_log_rr, fit_spread(composite_log_rr, log_rr, se), usable, composite_se)


def _usable(log_rr: np.ndarray, se: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    log_rr, se = np.asarray(log_rr, dtype=float), np.asarray(se, dtype=float)
    keep = np.isfinite(log_rr) & np.isfinite(se) & (se > 0)
    return log_rr[keep], se[keep]


def spread_negative_log_likelihood(sd: float | np.ndarray, mean: float, log_rr: np.ndarray, se: np.ndarray) -> Any:
    """-log L(sd) of log RR_j ~ N(mean, sd^2 + se_j^2); ``sd`` may be an array (one value per entry)."""
    sd = np.asarray(sd, dtype=float)
    variance = sd[..., None] ** 2 + se**2
    return 0.5 * np.sum(np.log(2 * math.pi * variance) + (log_rr - mean) ** 2 / variance, axis=-1)


POSTERIOR_GRID_POINTS = 4801


def spread_posterior_rms(mean: float, log_rr: np.ndarray, se: np.ndarray, prior_scale: float) -> float:
    """sqrt(E[sd^2]) under a half-normal(``prior_scale``) prior on the spread and the controls' likelihood
    around ``mean``: the spread's variance averaged over what the controls leave uncertain.

    Trapezoidal integration over sd. Where the grid may stop: beyond the largest |log RR_j - mean| every
    control's likelihood falls as sd grows (its variance exceeds its squared deviation), and so does the prior,
    so 12 prior scales past it leave out less than e^-72 of the posterior. The grid is dense on the prior's
    range and geometric towards the top, so a posterior pulled far out by the controls is resolved too."""
    if not (math.isfinite(prior_scale) and prior_scale > 0):
        raise ValueError(f"the spread's prior scale must be a positive number, not {prior_scale}")
    log_rr, se = _usable(log_rr, se)
    if log_rr.shape[0] == 0:
        return prior_scale  # no control: the prior alone
    top = float(np.max(np.abs(log_rr - mean))) + 12 * prior_scale
    grid = np.unique(
        np.concatenate(
            [
                np.linspace(0.0, 12 * prior_scale, POSTERIOR_GRID_POINTS),
                np.linspace(0.0, top, POSTERIOR_GRID_POINTS),
                np.geomspace(prior_scale * 1e-4, top, POSTERIOR_GRID_POINTS),
            ]
        )
    )
    log_post = -spread_negative_log_likelihood(grid, mean, log_rr, se) - grid**2 / (2 * prior_scale**2)
    weight = np.exp(log_post - log_post.max())
    return math.sqrt(float(np.trapezoid(weight * grid**2, grid) / np.trapezoid(weight, grid)))


def with_spread_prior(
    error: SystematicError, log_rr: np.ndarray, se: np.ndarray, prior_scale: float
) -> SystematicError:
    """``error`` whose calibrated intervals are widened by the spread's posterior root mean square under a
    half-normal(``prior_scale``) prior, the controls (``log_rr``, ``se``) around ``error.mean``; the fitted
    spread (and with it EASE) is kept."""
    posterior = spread_posterior_rms(error.mean, log_rr, se, prior_scale)
    return replace(error, spread_prior_scale=prior_scale, posterior_sd=posterior)


def widening_spread(fitted: float, posterior: float | None) -> float:
    """The spread a calibrated interval is widened by (``SystematicError.interval_sd``): the fitted one, or under a
    prior the larger of it and the posterior one."""
    return fitted if posterior is None else max(fitted, posterior)


def expected_absolute_systematic_error(mean: float, sd: float) -> float:
    """E|X| for X ~ N(mean, sd^2): the mean of a folded normal distribution."""
    if sd <= 0:
        return abs(mean)
    from scipy import stats  # late: see the note at the imports

    return float(
        sd * math.sqrt(2 / math.pi) * math.exp(-(mean**2) / (2 * sd**2)) + mean * (1 - 2 * stats.norm.cdf(-mean / sd))
    )


@dataclass(frozen=True)
class CalibratedInterval:
    log_rr: float
    ci_low: float
    ci_high: float
    se: float
    """All on the log rate-ratio scale."""


def calibrate_interval(
    log_rr: float, se: float, error: SystematicError, mean_uncertainty: bool = True
) -> CalibratedInterval:
    """The main estimate's 95% interval, shifted by the systematic error's mean and widened by its spread.

    ``mean_uncertainty``: also widen by the standard error of the fitted mean. EmpiricalCalibration
    treats the fitted distribution as known, which is fair with the dozens of controls OHDSI studies
    use; a study here has five to ten, rare, controls, and shifting every estimate by a mean known to
    +/- 0.15 without saying so would cost the interval its coverage (docs/validation.md).
    """
    centre = log_rr - error.mean
    spread = math.sqrt(error.interval_sd**2 + se**2 + (error.mean_se**2 if mean_uncertainty else 0.0))
    return CalibratedInterval(centre, centre - Z95 * spread, centre + Z95 * spread, spread)


def calibrate_difference(log_rr: float, error: SystematicError, difference_se: float) -> CalibratedInterval:
    """The main estimate less the systematic error's mean (the composite control's log rate ratio), with the
    standard error of that difference (``difference_se``, from the joint influence function), widened by
    the controls' spread (``SystematicError.interval_sd``)."""
    centre = log_rr - error.mean
    spread = math.sqrt(difference_se**2 + error.interval_sd**2)
    return CalibratedInterval(centre, centre - Z95 * spread, centre + Z95 * spread, spread)


def difference_from_ratio(treated_value: float, rate_ratio: float) -> float:
    """The rate difference (treated minus counterfactual) that a rate ratio implies for an observed treated rate."""
    return treated_value * (1 - 1 / rate_ratio)
