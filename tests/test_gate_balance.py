"""The gate's balance checks on covariates that do not vary: constant within a subgroup, or in one arm only."""

from __future__ import annotations

import numpy as np

from pipelines.impact.diagnostics import balance_diagnostics, standardised_differences
from pipelines.impact.gate import balance_checks, decide
from pipelines.impact.spec import Thresholds
from pipelines.presentation.verdict import check_rows


def _subgroup(seed: int, constant_value: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A GIR 3-4 subgroup: ``gir_3_4`` is ``constant_value`` for everyone, age varies; comparison weights
    uneven, as ATT weights are, so the weighted mean of the constant column carries a rounding residue."""
    rng = np.random.default_rng(seed)
    t = np.r_[np.ones(60), np.zeros(180)].astype(int)
    x = np.c_[np.full(240, constant_value), rng.normal(80, 6, 240)]
    w = np.r_[np.ones(60), rng.gamma(1.0, 1.0, 180) / 3]
    return x, t, w


def test_a_covariate_constant_in_both_arms_has_no_variance_ratio_and_fails_nothing() -> None:
    failing_before = 0
    for seed in range(20):
        x, t, w = _subgroup(seed, constant_value=1.0 + seed / 7)
        smd, ratio = standardised_differences(x, t, w)
        assert abs(smd[0]) < 1e-9
        assert np.isnan(ratio[0])  # no variance in either arm: no ratio, rather than 0 from a rounding residue
        assert np.isfinite(ratio[1])
        diagnostics = balance_diagnostics(x, t, w, np.full(240, 0.3), -1.0, 0.5, np.ones(240), ["gir_3_4", "age"])
        assert diagnostics.without_variance == ["gir_3_4"]
        check = next(c for c in balance_checks(Thresholds(), diagnostics) if c.name == "variance_ratio")
        assert check.detail["covariate"] == "age"
        assert check.detail["without_variance"] == ["gir_3_4"]
        failing_before += not check.passed
    assert failing_before < 20  # the age ratios are honest ones: most pass


def test_the_checks_table_says_which_covariates_had_no_variance() -> None:
    x, t, w = _subgroup(3)
    diagnostics = balance_diagnostics(x, t, w, np.full(240, 0.3), -1.0, 0.5, np.ones(240), ["gir_3_4", "age"])
    checks = [c for c in balance_checks(Thresholds(), diagnostics) if c.name == "variance_ratio"]
    verdict = decide(checks, None, None)
    french = " ".join(str(v) for row in check_rows(verdict, "fr") for v in row.values())
    english = " ".join(str(v) for row in check_rows(verdict, "en") for v in row.values())
    assert "sans variance dans les deux bras : GIR 3-4" in french
    assert "no variance in either arm: GIR 3-4" in english


def test_a_covariate_constant_in_one_arm_only_is_an_imbalance() -> None:
    x, t, w = _subgroup(5)
    x[:60, 0] = 1.0
    x[60:, 0] = np.r_[np.ones(90), np.zeros(90)]  # the comparison arm varies, the treated arm does not
    _, ratio = standardised_differences(x, t, w)
    assert ratio[0] == 0.0
    x[:60, 0] = np.r_[np.ones(30), np.zeros(30)]
    x[60:, 0] = 1.0  # now the treated arm varies and the comparison arm does not: an infinite ratio
    _, ratio = standardised_differences(x, t, w)
    assert ratio[0] == np.inf
    diagnostics = balance_diagnostics(x, t, w, np.full(240, 0.3), -1.0, 0.5, np.ones(240), ["gir_3_4", "age"])
    check = next(c for c in balance_checks(Thresholds(), diagnostics) if c.name == "variance_ratio")
    assert not check.passed
    assert check.detail["covariate"] == "gir_3_4"
    assert diagnostics.without_variance == []
    words = " ".join(str(v) for row in check_rows(decide([check], None, None), "fr") for v in row.values())
    assert "infini : pas de variance dans le groupe de comparaison (GIR 3-4)" in words


def test_covariates_without_variance_anywhere_leave_nothing_to_judge() -> None:
    x, t, w = _subgroup(2)
    x[:, 1] = 3.0
    diagnostics = balance_diagnostics(x, t, w, np.full(240, 0.3), -1.0, 0.5, np.ones(240), ["gir_3_4", "age"])
    check = next(c for c in balance_checks(Thresholds(), diagnostics) if c.name == "variance_ratio")
    assert check.passed
    assert check.detail["without_variance"] == ["gir_3_4", "age"]
