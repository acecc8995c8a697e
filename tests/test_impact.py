"""Impact estimators against known answers: simulations, the LaLonde benchmark, coverage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.cli import main
from pipelines.impact.diagnostics import balance_diagnostics, e_value, e_values_for_difference, kish_ess
from pipelines.impact.estimators import EstimationError, estimate_effect
from pipelines.impact.propensity import fit_logistic

EXPERIMENTAL_BENCHMARK = 1794.34  # NSW experiment: treated minus randomised controls


def simulate(n: int, seed: int, effect: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Confounded data: x raises both the chance of treatment and the outcome."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    t = (rng.random(n) < 1 / (1 + np.exp(-(-0.5 + 0.8 * x[:, 0] - 0.5 * x[:, 1])))).astype(int)
    y = 1.0 + effect * t + 3.0 * x[:, 0] + 1.5 * x[:, 1] + rng.normal(size=n)
    return y, t, x


def test_logistic_regression_recovers_its_coefficients() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20_000, 2))
    t = (rng.random(20_000) < 1 / (1 + np.exp(-(0.3 + 1.2 * x[:, 0] - 0.7 * x[:, 1])))).astype(float)
    assert fit_logistic(x, t) == pytest.approx([0.3, 1.2, -0.7], abs=0.06)


@pytest.mark.parametrize("method", ["match", "ipw", "aipw"])
def test_adjusted_estimates_find_the_true_effect_where_the_naive_one_fails(method: str) -> None:
    y, t, x = simulate(4000, seed=3)
    naive = y[t == 1].mean() - y[t == 0].mean()
    assert naive > 3  # confounding inflates the true effect of 2 by more than half
    result = estimate_effect(y, t, x, method, "att", resamples=200, seed=1)  # type: ignore[arg-type]
    assert result.ci_low < 2.0 < result.ci_high
    assert result.estimate == pytest.approx(2.0, abs=0.25)
    assert result.diagnostics.max_abs_smd_after < abs(np.array(result.diagnostics.smd_before)).max()


def test_overlap_weights_balance_means_exactly() -> None:
    y, t, x = simulate(3000, seed=4)
    result = estimate_effect(y, t, x, "overlap", resamples=100, seed=1)
    assert result.estimand == "ato"
    assert result.diagnostics.max_abs_smd_after < 1e-6  # a known property of overlap weights


def test_matching_with_and_without_replacement_name_their_variance() -> None:
    y, t, x = simulate(1500, seed=5)
    with_replacement = estimate_effect(y, t, x, "match", resamples=200, seed=1)
    without = estimate_effect(y, t, x, "match", resamples=200, seed=1, replace=False)
    assert "Abadie-Imbens" in with_replacement.variance
    assert "bootstrap of matched sets" in without.variance
    assert without.diagnostics.attrition["controls_used"] == without.diagnostics.attrition["treated_matched"]


def test_bootstrap_is_seeded() -> None:
    y, t, x = simulate(800, seed=6)
    first = estimate_effect(y, t, x, "ipw", resamples=100, seed=7)
    again = estimate_effect(y, t, x, "ipw", resamples=100, seed=7)
    other = estimate_effect(y, t, x, "ipw", resamples=100, seed=8)
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)
    assert (first.ci_low, first.ci_high) != (other.ci_low, other.ci_high)


def test_e_values_and_effective_sample_size() -> None:
    assert e_value(2.0) == pytest.approx(2 + np.sqrt(2))
    assert e_value(0.5) == pytest.approx(2 + np.sqrt(2))
    assert kish_ess(np.ones(10)) == 10
    assert kish_ess(np.array([1.0, 0.0, 0.0])) == 1


def test_e_values_of_a_comparison_arm_without_spread_are_undefined_not_a_crash() -> None:
    # A subgroup whose comparison outcomes were all equal, up to the last bit (0.1 + 0.2 against 0.3), had a
    # "spread" of 3e-17: exp(0.91 d) underflowed to 0 and the E-value divided by zero (the small federation,
    # seed 8, under the worlds generator).
    rounded = np.array([0.1 + 0.2, 0.3, 0.3, 0.3])
    assert 0 < float(np.std(rounded)) < 1e-15
    point, limit = e_values_for_difference(-1.0, 0.5, float(np.std(rounded)))
    assert point == limit == np.inf  # stored as none (strict JSON)
    assert e_values_for_difference(-1.0, 0.5, 0.0) == (None, None)
    assert e_value(0.0) == np.inf
    rng = np.random.default_rng(8)
    x = rng.normal(size=(40, 2))
    t = np.repeat([1, 0], 20)
    y = np.concatenate([rng.normal(size=20), np.tile([0.1 + 0.2, 0.3], 10)])  # comparison: one value, rounded twice
    found = balance_diagnostics(x, t, np.ones(40), np.full(40, 0.5), -1.0, 0.5, y)
    assert found.e_value is None
    assert found.e_value_ci is None


def test_bad_inputs_are_refused() -> None:
    y, t, x = simulate(100, seed=1)
    with pytest.raises(EstimationError, match="0 or 1"):
        estimate_effect(y, t * 2, x, "ipw")
    with pytest.raises(EstimationError, match="ATT only"):
        estimate_effect(y, t, x, "match", "ate")
    x[0, 0] = np.nan
    with pytest.raises(EstimationError, match="finite"):
        estimate_effect(y, t, x, "ipw")


@pytest.mark.parametrize("method", ["match", "ipw"])
def test_intervals_cover_the_truth_about_95_percent_of_the_time(method: str) -> None:
    covered = 0
    replications = 100
    for seed in range(replications):
        y, t, x = simulate(400, seed=1000 + seed)
        result = estimate_effect(y, t, x, method, resamples=150, seed=seed)  # type: ignore[arg-type]
        covered += result.ci_low <= 2.0 <= result.ci_high
    assert 88 <= covered <= 100, covered


@pytest.fixture(scope="module")
def lalonde(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from causaldata import cps_mixtape, nsw_mixtape

    nsw = nsw_mixtape.load_pandas().data
    cps = cps_mixtape.load_pandas().data
    data = pd.concat([nsw[nsw.treat == 1], cps])
    for column in ("age", "educ", "re74", "re75"):
        data[f"{column}_sq"] = data[column] ** 2
    data["u74"] = (data.re74 == 0).astype(int)
    data["u75"] = (data.re75 == 0).astype(int)
    path = tmp_path_factory.mktemp("lalonde") / "lalonde.csv"
    data.to_csv(path, index=False)
    return path


COVARIATES = "age,age_sq,educ,educ_sq,black,hisp,marr,nodegree,re74,re75,u74,u75"


def test_lalonde_naive_difference(lalonde: Path) -> None:
    data = pd.read_csv(lalonde)
    naive = data[data.treat == 1].re78.mean() - data[data.treat == 0].re78.mean()
    assert naive == pytest.approx(-8498, abs=5)
    assert (data.treat == 1).sum() == 185
    assert (data.treat == 0).sum() == 15992


@pytest.mark.parametrize("method", ["match", "ipw", "aipw"])
def test_lalonde_adjusted_interval_includes_the_experimental_benchmark(
    lalonde: Path, method: str, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["--data", str(lalonde), "--treatment", "treat", "--outcome", "re78", "--covariates", COVARIATES]
    code = main(["estimate", *arguments, "--method", method, "--bootstrap", "300", "--seed", "1", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"estimate", "ci_low", "ci_high", "estimand", "method", "n_treated", "n_control",
                           "diagnostics"}  # fmt: skip
    assert result["ci_low"] < EXPERIMENTAL_BENCHMARK < result["ci_high"]
    assert result["estimate"] > 0 > -8498
    # CPS controls are very unlike the NSW men: the gate must not call this publishable.
    assert result["publishable"] is False


def test_estimate_command_explains_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "d.csv"
    path.write_text("t,y,x\n1,2,3\n0,1,2\n")
    assert main(["estimate", "--data", str(path), "--treatment", "t", "--outcome", "y", "--covariates", "x,z"]) == 2
    assert "no column(s) z" in capsys.readouterr().err
    assert main(["estimate", "--data", str(tmp_path / "none.csv"), "--treatment", "t", "--outcome", "y",
                 "--covariates", "x"]) == 2  # fmt: skip
