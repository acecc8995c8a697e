"""Replay of calibration rules on stored validation rows: the current rule gives back what was published, the
other rules' arithmetic is checked on hand-computed cases."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from pipelines.impact import replay
from pipelines.impact.calibration import SystematicError, calibrate_difference, difference_from_ratio
from pipelines.impact.estimators import Z95
from pipelines.impact.validation import main as validation_main

# Twelve rows of validation run 3 (code b6f6dea, null worlds) and of the effect probe (code ec26721): both
# studies, spreads fitted at 0 and above, published false increases and reductions, refused studies.
ROWS_FILE = Path(__file__).parent / "fixtures" / "validation" / "results.jsonl"


def stored_rows() -> list[dict]:
    return [json.loads(line) for line in ROWS_FILE.read_text(encoding="utf-8").splitlines()]


def hand_row(**changes: object) -> dict:
    """A row as the study code would write it: main log RR 0.10, composite 0.20 (se 0.15), difference se 0.12,
    spread 0, six controls, treated rate 400 per 1,000 person-years."""
    error = SystematicError(0.20, 0.0, 6, 0.15)
    calibrated = calibrate_difference(0.10, error, 0.12)
    estimate, low, high = (difference_from_ratio(400.0, math.exp(v)) for v in (calibrated.log_rr, calibrated.ci_low,
                                                                               calibrated.ci_high))  # fmt: skip
    controls = {f"admissions_{i}": [0.20, 0.40] for i in range(6)}
    row = {
        "scenario": "baseline", "null": True, "seed": 7, "study": "unplanned_hospitalisations", "truth": 0.0,
        "publishable": True, "failed": "", "estimate": estimate, "ci_low": low, "ci_high": high,
        "uncalibrated_estimate": 30.0, "uncalibrated_ci_low": 1.0, "uncalibrated_ci_high": 59.0, "ease": 0.2,
        "log_ratio": 0.10, "log_ratio_se": 0.09, "treated_value": 400.0,
        "controls": {**controls, replay.COMPOSITE_KEY: [0.20, 0.15]},
        "systematic_mean": 0.20, "systematic_sd": 0.0, "systematic_mean_se": 0.15,
    }  # fmt: skip
    return {**row, **changes}


def test_the_current_rule_gives_back_every_stored_interval() -> None:
    rows = [replay.ingredients(r) for r in stored_rows()]
    assert all(r is not None for r in rows)
    assert len(rows) == 12
    for row in rows:
        assert row is not None
        again = replay.current(row)
        assert (again.estimate, again.ci_low, again.ci_high) == pytest.approx(row.stored, rel=1e-12, abs=1e-9)
        assert again.publishable == row.publishable


def test_the_difference_standard_error_is_recovered_from_the_published_interval() -> None:
    row = replay.ingredients(hand_row())
    assert row is not None
    assert row.difference_se == pytest.approx(0.12, rel=1e-12)
    assert row.controls == tuple((0.20, 0.40) for _ in range(6))  # the composite is not a control
    # With a spread, the recovered standard error is what is left of the calibrated one.
    error = SystematicError(0.20, 0.05, 6, 0.15)
    calibrated = calibrate_difference(0.10, error, 0.12)
    low, high = (difference_from_ratio(400.0, math.exp(v)) for v in (calibrated.ci_low, calibrated.ci_high))
    spread_row = replay.ingredients(hand_row(ci_low=low, ci_high=high, systematic_sd=0.05))
    assert spread_row is not None
    assert spread_row.difference_se == pytest.approx(0.12, rel=1e-10)


def test_the_log_ratio_of_a_difference_inverts_the_back_transformation() -> None:
    for ratio in (0.5, 0.9, 1.0, 1.3):
        assert replay.log_ratio_of_difference(250.0, difference_from_ratio(250.0, ratio)) == pytest.approx(
            math.log(ratio), abs=1e-12
        )


def test_t_quantile_uses_student_t_with_one_degree_of_freedom_fewer_than_controls() -> None:
    row = replay.ingredients(hand_row())
    assert row is not None
    got = replay.t_quantile(row)
    q = 2.570581835636314  # t(0.975, 5)
    centre = 0.10 - 0.20
    expected = [400 * (1 - math.exp(-v)) for v in (centre, centre - q * 0.12, centre + q * 0.12)]
    assert [got.estimate, got.ci_low, got.ci_high] == pytest.approx(expected, rel=1e-12)


def test_the_spread_upper_bound_has_a_closed_form_when_every_control_sits_on_the_mean() -> None:
    # log L(sd) - log L(0) = -(k/2) log(1 + sd^2 / s^2) when every estimate equals the mean, so the 95% bound
    # solves (k/2) log(1 + sd^2 / s^2) = chi2_1(0.95) / 2.
    k, s = 6, 0.4
    bound = replay.spread_upper_bound(0.1, np.full(k, 0.1), np.full(k, s))
    assert bound == pytest.approx(s * math.sqrt(math.exp(stats.chi2.ppf(0.95, 1) / k) - 1), rel=1e-8)
    # Controls spread far wider than their errors: the bound lies above the maximum-likelihood spread.
    log_rr, se = np.array([-0.9, -0.3, 0.2, 0.8, 1.1]), np.full(5, 0.1)
    assert replay.spread_upper_bound(0.2, log_rr, se) > np.sqrt(np.mean((log_rr - 0.2) ** 2) - 0.01)


def test_the_spread_posterior_is_the_prior_when_the_controls_say_nothing() -> None:
    # Half-normal(tau): E[sd^2] = tau^2. Controls with enormous errors leave the prior as it was.
    assert replay.spread_posterior_rms(0.0, np.zeros(6), np.full(6, 1e4), 0.1) == pytest.approx(0.1, rel=1e-3)
    # Controls that vary far more than their errors pull the spread up towards their own spread (1.0).
    wide = replay.spread_posterior_rms(0.0, np.array([-1.0, 1.0] * 10), np.full(20, 0.01), 0.1)
    assert 0.3 < wide < 1.0


def test_the_prior_scale_puts_95_percent_of_its_mass_on_an_acceptable_ease() -> None:
    scale = replay.prior_scale_from_max_ease(0.25)
    assert scale == pytest.approx(0.25 / math.sqrt(2 / math.pi) / Z95)
    # P(sd sqrt(2/pi) <= 0.25) for sd ~ half-normal(scale)
    assert stats.halfnorm.cdf(0.25 / math.sqrt(2 / math.pi), scale=scale) == pytest.approx(0.95)


def test_ease_always_refuses_what_the_gate_left_unjudged() -> None:
    over = replay.ingredients(hand_row(ease=0.30))
    under = replay.ingredients(hand_row(ease=0.20))
    assert over is not None
    assert under is not None
    assert not replay.ease_always(over).publishable
    assert replay.ease_always(under).publishable
    assert replay.current(over).publishable


def test_clopper_pearson_at_the_edges() -> None:
    assert replay.clopper_pearson(0, 81) == pytest.approx((0.0, 1 - 0.025 ** (1 / 81)))
    assert replay.clopper_pearson(81, 81) == pytest.approx((0.025 ** (1 / 81), 1.0))
    low, high = replay.clopper_pearson(8, 81)
    assert low < 8 / 81 < high


def test_figures_count_false_publications_per_world() -> None:
    rows = [replay.ingredients(hand_row(seed=s, scenario=w)) for s in range(4) for w in ("a", "b")]
    # One published false increase in world "b": a wider interval shifted up.
    rows.append(replay.ingredients(hand_row(seed=9, scenario="b", log_ratio=0.6)))
    rows.append(replay.ingredients(hand_row(seed=9, scenario="a", publishable=False, log_ratio=0.6)))
    found = replay.replay_figures([r for r in rows if r is not None], replay.current)
    a, b = found[("unplanned_hospitalisations", True, "a")], found[("unplanned_hospitalisations", True, "b")]
    assert (a.federations, a.publishable, a.excluding_zero) == (5, 4, 0)
    assert (b.federations, b.publishable, b.excluding_zero) == (5, 5, 1)
    assert b.median_width_ratio == 1.0


def test_the_world_table_judges_each_world_against_the_issues_rules() -> None:
    # World "a": 20 null federations, 1 published false effect (5%: met); 10 effect federations whose truth
    # (a reduction of 30) every interval covers (100%: outside the band, but 10 of 10 cannot tell it from 99%).
    # World "b": 20 null federations, 2 false effects (10%: not met); 10 effect federations, every interval missing
    # a truth of 500 (0%: shown outside the band).
    raw = [hand_row(seed=s, scenario=w) for s in range(19) for w in ("a",)]
    raw += [hand_row(seed=19, scenario="a", log_ratio=0.6)]
    raw += [hand_row(seed=s, scenario="b") for s in range(18)]
    raw += [hand_row(seed=s, scenario="b", log_ratio=0.6) for s in (18, 19)]
    covered = hand_row(null=False, truth=replay.ingredients(hand_row()).stored[0])  # type: ignore[union-attr]
    raw += [{**covered, "seed": s, "scenario": "a"} for s in range(10)]
    raw += [{**covered, "seed": s, "scenario": "b", "truth": 500.0} for s in range(10)]
    rows = [r for r in (replay.ingredients(x) for x in raw) if r is not None]
    table = replay.world_table(rows, "current").splitlines()
    a = next(line for line in table if "| a |" in line)
    b = next(line for line in table if "| b |" in line)
    assert (
        "| 20 | 1 | 0.1-24.9% | met | 10 | 100.0% | 10 / 10 (100.0%) | 69.2-100.0% | outside, not distinguishable |"
        in a
    )
    assert "| 20 | 2 | 1.2-31.7% | not met | 10 | 100.0% | 0 / 10 (0.0%) | 0.0-30.8% | outside the band |" in b
    assert replay.clopper_pearson(1, 20) == pytest.approx((0.00126, 0.24873), abs=5e-5)


def test_unknown_rules_are_refused_and_a_scale_can_be_given() -> None:
    with pytest.raises(ValueError, match="unknown replay rule"):
        replay.rule_named("widest")
    row = replay.ingredients(hand_row())
    assert row is not None
    scaled = replay.rule_named("spread_prior:0.16")(row)
    derived = replay.spread_prior(row, max_ease=0.16 * math.sqrt(2 / math.pi) * Z95)
    assert (scaled.ci_low, scaled.ci_high) == pytest.approx((derived.ci_low, derived.ci_high))


def test_the_command_prints_the_table_of_a_results_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "results.jsonl").write_text(ROWS_FILE.read_text(encoding="utf-8"), encoding="utf-8")
    assert validation_main(["--replay", "current", "t_quantile", "--out", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    # Run 3's rows of the fixture: 4 headline null federations, 2 published false effects (seeds 3 and 4).
    assert "| current | unplanned_hospitalisations | 4 | 2 (50.0%) |" in table
    assert "| t_quantile | hospitalisations_did |" in table


def test_the_calibrated_z_and_the_diagnosis() -> None:
    row = replay.ingredients(hand_row())
    assert row is not None
    assert replay.calibrated_z(row) == pytest.approx((0.10 - 0.20) / 0.12)
    rows = [replay.ingredients(hand_row(seed=s, scenario=w, log_ratio=0.1 * s - 0.2, systematic_mean=0.05 * s))
            for s in range(5) for w in ("a", "b")]  # fmt: skip
    text = replay.diagnosis([r for r in rows if r is not None])
    assert text.startswith("unplanned_hospitalisations: 10 null federations")
    assert "spread 0: 10 (100%)" in text
    assert "between worlds: Levene p" in text


def test_a_row_of_a_study_with_a_prior_is_read_with_the_spread_its_interval_was_widened_by() -> None:
    # The stored interval widened by a posterior spread of 0.09 while the fitted spread is 0.
    error = SystematicError(0.20, 0.0, 6, 0.15, spread_prior_scale=0.1, posterior_sd=0.09)
    calibrated = calibrate_difference(0.10, error, 0.12)
    low, high = (difference_from_ratio(400.0, math.exp(v)) for v in (calibrated.ci_low, calibrated.ci_high))
    row = replay.ingredients(hand_row(ci_low=low, ci_high=high, systematic_interval_sd=0.09, spread_prior_scale=0.1))
    assert row is not None
    assert (row.spread, row.interval_spread, row.spread_prior_scale) == (0.0, 0.09, 0.1)
    assert row.difference_se == pytest.approx(0.12, rel=1e-10)
    again = replay.current(row)
    assert (again.ci_low, again.ci_high) == pytest.approx((low, high), rel=1e-12)
    assert replay.calibrated_z(row) == pytest.approx((0.10 - 0.20) / math.hypot(0.12, 0.09))
    # The maximum-likelihood rule on the same row: the spread of 0, as a row measured without the prior.
    fitted = replay.rule_named("fitted_spread")(row)
    plain = replay.current(replay.ingredients(hand_row()))  # type: ignore[arg-type]
    assert (fitted.ci_low, fitted.ci_high) == pytest.approx((plain.ci_low, plain.ci_high), rel=1e-10)
    assert fitted.ci_high - fitted.ci_low < high - low
