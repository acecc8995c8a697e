"""Ratio estimators, difference-in-differences and cumulative incidence on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from pipelines.impact.curves import COMPETING, EVENT, _people_counts, aalen_johansen
from pipelines.impact.estimators import EstimationError
from pipelines.impact.rates import did_point, ratio_effect
from pipelines.impact.resampling import bootstrap_draws
from pipelines.impact.study import StudySpec, load_studies


def test_without_censoring_or_competing_risks_cumulative_incidence_is_the_empirical_distribution() -> None:
    days = np.array([0, 2, 2, 5])
    curve = aalen_johansen(days, np.full(4, EVENT), np.ones(4), horizon=6)
    assert curve.tolist() == pytest.approx([0.25, 0.25, 0.75, 0.75, 0.75, 1.0, 1.0])


def test_people_at_risk_and_events_are_the_rows_counted_day_by_day() -> None:
    rng = np.random.default_rng(3)
    days = rng.integers(0, 400, 5000)
    status = rng.choice([0, EVENT, COMPETING], 5000)
    grid = np.unique(np.append(np.arange(0, 365, 7), 364))
    counts = _people_counts(days, status, grid)
    assert counts["at_risk"].tolist() == [int((days >= d).sum()) for d in grid]
    assert counts["events"].tolist() == [int(((status == EVENT) & (days <= d)).sum()) for d in grid]
    empty = _people_counts(days[:0], status[:0], grid)
    assert empty["at_risk"].tolist() == empty["events"].tolist() == [0] * grid.shape[0]


def test_a_death_stops_the_risk_of_admission_instead_of_being_censored() -> None:
    # Four people: admitted on day 1, dies on day 1, admitted on day 3, censored on day 2.
    # Day 1: 4 at risk, one admission and one death: incidence 1/4, survival 1/2.
    # Day 3: 1 at risk (day-2 censoring leaves one), one admission: incidence + 1/2 * 1 = 3/4.
    # One minus Kaplan-Meier would censor the death and say 1 - (3/4 * 0) = 1 by day 3.
    days = np.array([1, 1, 3, 2])
    status = np.array([EVENT, COMPETING, EVENT, 0])
    curve = aalen_johansen(days, status, np.ones(4), horizon=3)
    assert curve.tolist() == pytest.approx([0.0, 0.25, 0.25, 0.75])


def test_weights_count_people_as_many_times_as_their_weight() -> None:
    weighted = aalen_johansen(np.array([1, 4]), np.array([EVENT, 0]), np.array([3.0, 1.0]), horizon=4)
    repeated = aalen_johansen(np.array([1, 1, 1, 4]), np.array([EVENT, EVENT, EVENT, 0]), np.ones(4), horizon=4)
    assert weighted.tolist() == pytest.approx(repeated.tolist())


def test_difference_in_differences_by_hand() -> None:
    # Treated: 2 admissions in the year before, 1 in the year after; comparison: 1 and 1.
    t = np.array([1, 0])
    before, after, years = np.array([2.0, 1.0]), np.array([1.0, 1.0]), np.array([1.0, 1.0])
    assert did_point(before, after, years, t, before_years=1.0) == pytest.approx(-1000.0)


def test_difference_in_differences_weighs_the_before_period_by_time_followed_after() -> None:
    # Two treated people with rates that do not change: 4/year followed 1 year after, 0/year
    # followed 1/4 year after. Unweighted, the before rate (2/year) against the after rate
    # (4.0 / 1.25 = 3.2/year) would show a rise of 1,200 per 1,000 PY that is only composition.
    t = np.array([1, 1, 0])
    before = np.array([4.0, 0.0, 1.0])
    after = np.array([4.0, 0.0, 1.0])
    years = np.array([1.0, 0.25, 1.0])
    assert did_point(before, after, years, t, before_years=1.0) == pytest.approx(0.0)


def test_the_doubly_robust_ratio_uses_each_treated_persons_own_exposure() -> None:
    # Rates depend on one covariate only (1/year when x=0, 3/year when x=1) and nothing else:
    # treated people with x=1 are followed 4 times longer than comparison ones. The truth is
    # no effect; plain weighting mixes the comparison's exposures and misses it.
    rng = np.random.default_rng(3)
    n = 40_000
    x = (rng.random(n) < 0.5).astype(float)
    t = (rng.random(n) < np.where(x == 1, 0.6, 0.4)).astype(int)
    exposure = np.where((t == 1) & (x == 1), 2.0, 0.5)
    events = rng.poisson(np.where(x == 1, 3.0, 1.0) * exposure).astype(float)
    dr, _, _ = ratio_effect(events, exposure, t, x[:, None], "aipw", 100, 1)
    ipw, _, _ = ratio_effect(events, exposure, t, x[:, None], "ipw", 100, 1)
    assert dr.ci_low <= 0 <= dr.ci_high
    assert abs(dr.estimate) < 30
    assert ipw.estimate > 300  # a spurious rise: the composition bias the doubly robust estimate removes


def test_ratio_outcomes_refuse_matching_and_a_positive_exposure_is_required() -> None:
    x = np.zeros((4, 1))
    with pytest.raises(EstimationError, match="ratio outcome"):
        ratio_effect(np.ones(4), np.ones(4), np.array([1, 1, 0, 0]), x, "match", 50, 0)
    with pytest.raises(EstimationError, match="positive exposure"):
        ratio_effect(np.ones(4), np.array([1, 0, 1, 1.0]), np.array([1, 1, 0, 0]), x, "ipw", 50, 0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"outcome": "rupture_repair_days", "design": "match"}, "ratio outcome"),
        ({"outcome": "zarit_change_12m", "design": "did"}, "unplanned_admissions only"),
        ({"outcome": "unplanned_admissions", "design": "ipw", "estimand": "ate"}, "att"),
    ],
)
def test_a_design_that_does_not_fit_the_outcome_is_refused(changes: dict[str, str], message: str) -> None:
    spec = next(s for s in load_studies() if s.name == "unplanned_hospitalisations").model_dump()
    with pytest.raises(ValidationError, match=message):
        StudySpec.model_validate({**spec, **changes})


@pytest.mark.parametrize("little", [False, True])
def test_bootstrap_draws_spread_like_the_known_standard_error(little: bool) -> None:
    """A difference in means has a known standard error; both the plain bootstrap and the bag of
    little bootstraps (re-centred on the estimate) must reproduce it."""
    rng = np.random.default_rng(5)
    n = 60_000
    t = (rng.random(n) < 0.7).astype(int)
    y = rng.exponential(2.0, n) + t

    def difference(rows: np.ndarray, weights: np.ndarray | None) -> float:
        w = np.ones(rows.shape[0]) if weights is None else weights
        arm = t[rows] == 1
        return float(np.average(y[rows][arm], weights=w[arm]) - np.average(y[rows][~arm], weights=w[~arm]))

    point = difference(np.arange(n), None)
    draws = bootstrap_draws(t, difference, point, 400, 11, little=little)
    known = np.sqrt(y[t == 1].var() / (t == 1).sum() + y[t == 0].var() / (t == 0).sum())
    assert draws.std() == pytest.approx(known, rel=0.12)
    assert np.mean(draws) == pytest.approx(point, abs=known / 3)
