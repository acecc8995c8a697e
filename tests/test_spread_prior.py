"""The spread of the systematic error under a half-normal prior (issue 12): the posterior root mean square on
hand-checkable cases and against numerical integration, the study file's setting, and the pipeline's
calibrated interval equal to the replayed rule on the same federation (what makes a replay of validation
rows a test of the rule the studies publish with)."""

from __future__ import annotations

import itertools
import math
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import integrate

from pipelines import warehouse
from pipelines.impact import replay
from pipelines.impact.calibration import (
    SystematicError,
    calibrate_difference,
    calibrate_interval,
    fit_systematic_error,
    spread_negative_log_likelihood,
    spread_posterior_rms,
    with_spread_prior,
)
from pipelines.impact.estimators import Z95
from pipelines.impact.spec import StudySpec, load_studies, load_study, studies_dir
from pipelines.impact.study import run_study
from pipelines.impact.validation import load_federation, result_row, validation_spec
from pipelines.synthetic.federation import FederationSpec, generate_federation


def quad_posterior_rms(mean: float, log_rr: np.ndarray, se: np.ndarray, scale: float) -> float:
    """The oracle: sqrt(E[sd^2]) by adaptive quadrature over [0, inf), the posterior taken relative to its mode."""

    def log_posterior(sd: float) -> float:
        return -float(spread_negative_log_likelihood(sd, mean, log_rr, se)) - sd**2 / (2 * scale**2)

    # Split at the prior's scale and the posterior's mode: quad maps [0, inf) onto a finite range and could
    # step over mass far from both ends.
    grid = np.linspace(0.0, 10 * max(scale, float(np.max(np.abs(log_rr - mean)))), 20001)
    values = [log_posterior(s) for s in grid]
    peak, top = float(grid[int(np.argmax(values))]), max(values)
    edges = [0.0, *sorted({scale, peak} - {0.0}), np.inf]

    def density(sd: float, power: int) -> float:
        return sd**power * math.exp(log_posterior(sd) - top)

    def integral(power: int) -> float:
        pieces = itertools.pairwise(edges)
        return sum(integrate.quad(density, a, b, args=(power,), limit=500, epsrel=1e-11)[0] for a, b in pieces)

    numerator, denominator = integral(2), integral(0)
    return math.sqrt(numerator / denominator)


# --- the posterior root mean square --------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0.05, 0.1, 0.5, 1.0])
def test_controls_with_huge_errors_leave_the_prior_whose_root_mean_square_is_its_scale(scale: float) -> None:
    # Half-normal(tau): E[sd^2] = tau^2. Controls whose errors dwarf any spread say nothing about it.
    assert spread_posterior_rms(0.3, np.array([0.1, 0.5, -0.2, 0.3, 0.9, 0.0]), np.full(6, 1e4), scale) == (
        pytest.approx(scale, rel=1e-6)
    )


def test_no_usable_control_leaves_the_prior() -> None:
    assert spread_posterior_rms(0.0, np.array([np.nan, 0.2]), np.array([0.3, 0.0]), 0.1) == 0.1


def test_controls_tightly_around_the_mean_give_a_small_spread() -> None:
    # Six precise controls exactly on the mean: the likelihood (sd^2 + s^2)^(-3) keeps sd of the order of s.
    log_rr, se = np.full(6, 0.2), np.full(6, 0.01)
    tight = spread_posterior_rms(0.2, log_rr, se, 0.1)
    assert tight < 0.02
    assert tight == pytest.approx(quad_posterior_rms(0.2, log_rr, se, 0.1), rel=1e-6)
    # With the errors of a real federation (0.38) they narrow the prior a little: for small sd the likelihood is
    # about exp(-3 sd^2 / 0.38^2), a half-normal of precision 6 / 0.38^2, which adds to the prior's 1 / 0.1^2.
    assert spread_posterior_rms(0.2, log_rr, np.full(6, 0.38), 0.1) == pytest.approx(
        1 / math.sqrt(1 / 0.1**2 + 6 / 0.38**2), abs=0.002
    )


def test_controls_scattered_far_beyond_their_errors_pull_the_spread_to_their_own() -> None:
    # Twenty precise controls at +-1: their spread is 1; a prior of 0.1 holds it back only a little.
    log_rr, se = np.array([-1.0, 1.0] * 10), np.full(20, 0.01)
    wide = spread_posterior_rms(0.0, log_rr, se, 0.1)
    assert 0.3 < wide < 1.0
    assert wide == pytest.approx(quad_posterior_rms(0.0, log_rr, se, 0.1), rel=1e-6)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("scale", [0.05, 0.1, 0.3])
def test_the_posterior_root_mean_square_agrees_with_adaptive_quadrature(seed: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(5, 11))
    se = rng.uniform(0.05, 0.8, k)
    true_spread = [0.0, 0.1, 0.3, 0.8, 0.05, 2.0][seed]
    mean = float(rng.normal(0, 0.2))
    log_rr = mean + rng.normal(0, true_spread, k) + rng.normal(0, se)
    got = spread_posterior_rms(mean, log_rr, se, scale)
    assert got == pytest.approx(quad_posterior_rms(mean, log_rr, se, scale), rel=1e-6)


def test_an_outlying_control_against_quadrature() -> None:
    # A small federation's DiD (2,000 persons): one rare control 5.6 log units off, its error 1.0.
    log_rr = np.array([0.761, -0.104, -0.493, 5.557, 0.348, -0.244])
    se = np.array([0.848, 0.573, 0.608, 1.012, 0.727, 0.745])
    for scale in (0.1, 0.5, 1.0):
        assert spread_posterior_rms(0.113, log_rr, se, scale) == pytest.approx(
            quad_posterior_rms(0.113, log_rr, se, scale), rel=1e-6
        )


@pytest.mark.parametrize("scale", [0.0, -0.1, math.inf, math.nan])
def test_a_scale_that_is_not_a_positive_number_is_refused(scale: float) -> None:
    with pytest.raises(ValueError, match="prior scale must be a positive number"):
        spread_posterior_rms(0.0, np.zeros(6), np.full(6, 0.3), scale)


# --- the systematic error under the prior --------------------------------------------------------------------


def test_the_prior_never_narrows_the_interval_below_the_controls_own_spread() -> None:
    # One control far off: the controls put the spread near 1.1, a half-normal(0.1) prior pulls it to 0.4.
    log_rr = np.array([0.0, 0.05, -0.05, 0.02, -0.02, 3.0])
    se = np.full(6, 0.3)
    fitted = fit_systematic_error(log_rr, se)
    prior = with_spread_prior(fitted, log_rr, se, 0.1)
    assert prior.posterior_sd is not None
    assert prior.posterior_sd < 0.5 < 1.0 < fitted.sd
    assert prior.interval_sd == fitted.sd
    wide, narrow = calibrate_difference(0.1, prior, 0.12), calibrate_difference(0.1, fitted, 0.12)
    assert (wide.ci_low, wide.ci_high) == (narrow.ci_low, narrow.ci_high)


def test_the_prior_widens_the_interval_and_keeps_the_fitted_spread_and_ease() -> None:
    log_rr, se = np.array([0.2] * 6), np.full(6, 0.4)
    fitted = SystematicError(0.2, 0.0, 6, 0.15)
    prior = with_spread_prior(fitted, log_rr, se, 0.1)
    posterior = spread_posterior_rms(0.2, log_rr, se, 0.1)
    assert (prior.sd, prior.posterior_sd, prior.spread_prior_scale) == (0.0, posterior, 0.1)
    assert prior.interval_sd == posterior
    assert fitted.interval_sd == 0.0
    assert prior.expected_absolute_error == fitted.expected_absolute_error == 0.2
    # By hand: main log RR 0.1, difference standard error 0.12.
    calibrated = calibrate_difference(0.10, prior, 0.12)
    half = Z95 * math.sqrt(0.12**2 + posterior**2)
    assert (calibrated.log_rr, calibrated.ci_low, calibrated.ci_high) == pytest.approx((-0.1, -0.1 - half, -0.1 + half))
    # Subgroups (calibrate_interval) are widened by the same spread.
    subgroup = calibrate_interval(0.10, 0.2, prior)
    assert subgroup.se == pytest.approx(math.sqrt(posterior**2 + 0.2**2 + 0.15**2))


def test_the_stored_systematic_error_is_unchanged_without_a_prior_and_reads_back_with_one() -> None:
    fitted = SystematicError(0.2, 0.05, 6, 0.15)
    assert set(fitted.as_json()) == {"mean", "sd", "controls", "mean_se", "ease", "minimum_detectable_systematic_error"}
    assert SystematicError.from_json(fitted.as_json()) == fitted
    prior = with_spread_prior(fitted, np.array([0.1, 0.3] * 3), np.full(6, 0.3), 0.1)
    assert SystematicError.from_json(prior.as_json()) == prior


# --- the study file ------------------------------------------------------------------------------------------


# The registered scale's line in a study file, whatever the scale of the version in force.
SCALE_LINE = r"^  spread_prior_scale: [0-9.]+$"


def _headline_text() -> str:
    return (studies_dir() / "unplanned_hospitalisations.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "greater than 0"),
        ("-0.1", "greater than 0"),
        (".inf", "finite number"),
        (".nan", "finite number"),
        ("'0.1'", "valid number"),
        ("true", "valid number"),
        ("2.5", "less than or equal to 1"),
    ],
)
def test_a_study_file_with_a_bad_prior_scale_is_refused(tmp_path: Path, value: str, message: str) -> None:
    text = _headline_text()
    assert re.search(SCALE_LINE, text, flags=re.M)
    path = tmp_path / "bad.yaml"
    path.write_text(re.sub(SCALE_LINE, f"  spread_prior_scale: {value}", text, flags=re.M))
    with pytest.raises(ValidationError, match=rf"calibration\.spread_prior_scale\n  Input should be (a )?{message}"):
        load_study(path)


def test_a_calibration_block_needs_negative_controls_and_a_scale(tmp_path: Path) -> None:
    carer = (studies_dir() / "carer_burden.yaml").read_text(encoding="utf-8")
    path = tmp_path / "carer.yaml"
    path.write_text(carer + "\ncalibration:\n  spread_prior_scale: 0.1\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="calibration settings need negative controls"):
        load_study(path)
    path.write_text(re.sub(SCALE_LINE, "  spread_prior: 0.1", _headline_text(), flags=re.M))
    with pytest.raises(ValidationError, match="spread_prior_scale\n  Field required"):
        load_study(path)


def test_a_study_file_without_the_setting_keeps_the_maximum_likelihood_spread(tmp_path: Path) -> None:
    # What every version before the prior says (releases and parcours reproduce read those files).
    path = tmp_path / "older.yaml"
    path.write_text(re.sub(r"^calibration:\n" + SCALE_LINE[1:] + r"\n", "", _headline_text(), flags=re.M))
    assert load_study(path).calibration is None
    assert load_study(studies_dir() / "unplanned_hospitalisations.yaml").calibration is not None


# --- the pipeline against the replay -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prior_and_fitted_rows() -> list[tuple[StudySpec, dict[str, Any], dict[str, Any]]]:
    """Each study with a prior, run on one small federation as the validation runs it, and the same study
    without the setting (the maximum-likelihood spread, as run 4's rows were measured): both rows."""
    federation = generate_federation(FederationSpec(agencies=8, persons=2000, seed=5))
    studies = [s for s in load_studies() if s.calibration is not None]
    assert {s.name for s in studies} == {"unplanned_hospitalisations", "hospitalisations_did"}
    out = []
    with tempfile.TemporaryDirectory() as folder, warehouse.connect(Path(folder) / "prior.duckdb") as con:
        load_federation(con, federation.tables)
        for spec in studies:
            rows = []
            for version in (spec, spec.model_copy(update={"calibration": None})):
                result = run_study(con, validation_spec(version), descriptive=False)
                where = {"scenario": "baseline", "null": False, "seed": 5, "study": spec.name, "truth": 0.0}
                rows.append({**where, **result_row(result)})
            out.append((spec, rows[0], rows[1]))
    return out


def test_the_published_interval_is_the_replayed_rule_on_the_maximum_likelihood_row(
    prior_and_fitted_rows: list[tuple[StudySpec, dict[str, Any], dict[str, Any]]],
) -> None:
    for spec, prior_row, fitted_row in prior_and_fitted_rows:
        assert spec.calibration is not None
        scale = spec.calibration.spread_prior_scale
        fitted = replay.ingredients(fitted_row)
        assert fitted is not None, spec.name
        assert fitted_row["systematic_interval_sd"] is None
        replayed = replay.spread_prior_scaled(scale)(fitted)
        published = (prior_row["estimate"], prior_row["ci_low"], prior_row["ci_high"])
        assert (replayed.estimate, replayed.ci_low, replayed.ci_high) == pytest.approx(published, rel=1e-9), spec.name
        # Only the interval changes: the verdict's checks, EASE and the centre are the fitted spread's.
        assert (prior_row["publishable"], prior_row["failed"]) == (fitted_row["publishable"], fitted_row["failed"])
        assert prior_row["ease"] == fitted_row["ease"]
        assert prior_row["systematic_sd"] == fitted_row["systematic_sd"]
        assert prior_row["estimate"] == pytest.approx(fitted_row["estimate"], rel=1e-12)
        assert prior_row["spread_prior_scale"] == scale
        # Never narrower than the controls' own spread makes it (this federation's DiD controls put it near 1.9).
        fitted_width = fitted_row["ci_high"] - fitted_row["ci_low"]
        assert prior_row["ci_high"] - prior_row["ci_low"] >= fitted_width * (1 - 1e-12)
    widths = [(p["ci_high"] - p["ci_low"]) / (f["ci_high"] - f["ci_low"]) for _, p, f in prior_and_fitted_rows]
    assert max(widths) > 1.01, widths


def test_the_row_of_a_study_with_a_prior_replays_as_published(
    prior_and_fitted_rows: list[tuple[StudySpec, dict[str, Any], dict[str, Any]]],
) -> None:
    for spec, prior_row, _ in prior_and_fitted_rows:
        assert spec.calibration is not None
        row = replay.ingredients(prior_row)
        assert row is not None
        assert row.interval_spread == prior_row["systematic_interval_sd"]
        stored = (prior_row["estimate"], prior_row["ci_low"], prior_row["ci_high"])
        for rule in (replay.current, replay.spread_prior_scaled(spec.calibration.spread_prior_scale)):
            again = rule(row)
            assert (again.estimate, again.ci_low, again.ci_high) == pytest.approx(stored, rel=1e-9), spec.name
