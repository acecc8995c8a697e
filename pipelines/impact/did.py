"""Difference-in-differences that selection on the recent past cannot fool.

People are referred to care management after a crisis: a hospital stay in the weeks before the
index date makes enrolment more likely. Their admission rate is high just before enrolment and
falls back afterwards whatever happens (regression to the mean, the "Ashenfelter dip"): a DiD
whose "before" window holds that crisis reports the fall as an effect (issue 12: 190 to 215
"avoided" admissions per 1,000 person-years under no effect at all). The design here:

* a **pre-period** of ``pre_period_months`` before the index date, minus a **washout** of the
  last ``washout_months`` (the referral crisis): the baseline rate is measured on months
  ``-pre_period_months`` to ``-washout_months - 1``. Episodes whose agency's records do not cover
  the whole pre-period are excluded and counted in the attrition table (``study.py``), never
  treated as having had no admissions;
* a **doubly robust DiD** (Sant'Anna and Zhao, 2020, *Journal of Econometrics* 219(1)) on each
  episode's change: its admissions after the index date minus its baseline rate times its
  exposure after, both nuisance functions cross-fitted (``crossfit.py``), conditioning on the
  study's covariates **and on the baseline rate** (the pre-period outcome level);
* a **placebo** DiD between the two halves of the baseline window, which never overlaps the
  washout (the selection window): the old placebo compared two half-years inside the window
  people were selected on, so it could not see the dip;
* a **dip check** on the ``DIP_MONTHS`` just before the baseline window ends (right before the
  washout, or right before enrolment without one): the treated arm's rate there against its
  counterfactual from the comparison arm's trend, as a rate ratio. The trend is taken against the
  **earlier half of the baseline** (``dip_reference``), far from any referral crisis: a crisis
  that starts long before enrolment also raises the months just before the dip window, and
  against them (the first version used the rest of the baseline) the rise was understated (a
  ratio of 1.29 with a lower bound of 0.98 where referral crises began up to 10 months before
  enrolment). A dip is detected when the 95% interval of that ratio lies entirely above ``1`` (a
  rise significant at 2.5%, one-sided): it means the crisis reaches into the baseline, and the
  gate refuses the DiD. The same ratio in the washout window itself is reported, so a reader sees
  the crisis the washout removes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

from pipelines.impact.crossfit import (
    CrossFitted,
    Design,
    EffectOnTreated,
    LearnerName,
    Learners,
    assign_folds,
    check_arms,
    crossfit_both,
    crossfit_designs,
    crossfit_outcome,
    doubly_robust_att,
)
from pipelines.impact.weights import WeightRule

MONTH_YEARS = 1 / 12
DIP_MONTHS = 3
"""Months just before the baseline ends in which a rise of the treated arm's rate is looked for."""


@dataclass(frozen=True)
class Windows:
    """Months before the index date (1 = the month just before it) for each part of the design."""

    pre_period_months: int
    washout_months: int

    @property
    def baseline(self) -> range:
        return range(self.washout_months + 1, self.pre_period_months + 1)

    @property
    def placebo_late(self) -> range:
        months = self.baseline
        return range(months.start, months.start + len(months) // 2)

    @property
    def placebo_early(self) -> range:
        return range(self.placebo_late.stop, self.pre_period_months + 1)

    @property
    def dip(self) -> range:
        start = self.washout_months + 1
        return range(start, min(start + DIP_MONTHS, self.pre_period_months + 1))

    @property
    def dip_reference(self) -> range:
        """The months the dip window is compared with: the earlier half of the baseline (the placebo's
        earlier half), never next to the dip window, so that a crisis reaching past the washout cannot
        hide in it."""
        return self.placebo_early

    @property
    def washout(self) -> range:
        return range(1, self.washout_months + 1)

    def validate(self) -> None:
        if len(self.baseline) < 2 * DIP_MONTHS:
            raise ValueError(
                f"the baseline window (months {self.washout_months + 1} to {self.pre_period_months} before the index "
                f"date) needs at least {2 * DIP_MONTHS} months for its placebo and dip checks"
            )


def window_counts(by_month: np.ndarray, months: range) -> np.ndarray:
    """Events per row over ``months`` (1-based months before the index date) from a rows x months array."""
    if len(months) == 0:
        return np.zeros(by_month.shape[0])
    return np.asarray(by_month[:, months.start - 1 : months.stop - 1].sum(axis=1), dtype=float)


def did_on_change(
    before_counts: np.ndarray,
    before_years: float,
    after_counts: np.ndarray,
    after_years: np.ndarray,
    t: np.ndarray,
    x: np.ndarray,
    learners: Learners,
    nuisance: CrossFitted | None,
    rule: WeightRule,
    clusters: np.ndarray | None = None,
) -> tuple[EffectOnTreated, CrossFitted, np.ndarray]:
    """Doubly robust DiD per 1,000 person-years: change = after - baseline rate x after exposure.

    The covariates are ``x`` plus the baseline rate (the pre-period outcome level). ``nuisance``:
    cross-fitted propensity scores to reuse (the same design for the main outcome and its negative
    controls); else they are fitted with ``learners``. Returns the effect, the
    nuisance used and the covariates with the baseline rate appended (for balance diagnostics).
    """
    before_rate = before_counts / before_years
    design = np.column_stack([x, before_rate])
    change = after_counts - before_rate * after_years
    if nuisance is None:
        nuisance, m0 = crossfit_both(change, after_years, t, design, learners, "squared")
    else:
        m0 = crossfit_outcome(change, after_years, t, design, nuisance, "squared")
    effect = doubly_robust_att(
        change, after_years, t, nuisance.propensity, m0, rule, scale=1000.0, clusters=clusters, observed=after_counts
    )
    return effect, nuisance, design


@dataclass(frozen=True)
class Change:
    """One difference-in-differences design of a study, for ``did_on_changes``: its windows' counts and exposures
    (as ``did_on_change`` takes them), the earlier design whose cross-fitted propensity scores it reuses (its
    position; None: fitted for it) and its outcome model's learner when not the study's."""

    before_counts: np.ndarray
    before_years: float
    after_counts: np.ndarray
    after_years: np.ndarray
    propensity_from: int | None = None
    learner: LearnerName | None = None


def did_on_changes(
    changes: Sequence[Change],
    t: np.ndarray,
    x: np.ndarray,
    learners: Learners,
    rule: WeightRule,
    clusters: np.ndarray | None = None,
) -> Iterator[tuple[EffectOnTreated, CrossFitted]]:
    """``did_on_change`` of each design, in order, with the nuisance it used: the same figures as one call after
    the other (the folds are the study's, the same for every design), the designs' fits all side by side in one
    stream (``crossfit.crossfit_designs``): a study's eleven designs left a core idle at the end of each, and its
    covariates and baseline rate were grouped into cells while no fit ran. Each effect is computed as soon as its
    design's fits are in, so the first error is the one a call after the other raises."""
    check_arms(t, learners)
    fold = assign_folds(t, learners.folds, learners.seed)
    before_rates = [change.before_counts / change.before_years for change in changes]
    moved = [c.after_counts - rate * c.after_years for c, rate in zip(changes, before_rates, strict=True)]

    def design(i: int) -> Callable[[], Design]:
        change = changes[i]
        settings = learners if change.learner is None else replace(learners, learner=change.learner)

        def build() -> Design:
            # The covariates and the baseline rate, grouped into cells as one matrix without that copy of it.
            outcome = (moved[i], change.after_years, "squared")
            propensity = change.propensity_from is None
            return Design(t, x, fold, settings, propensity, outcome, trailing=before_rates[i])  # type: ignore[arg-type]

        return build

    nuisances: list[CrossFitted] = []
    fitted = crossfit_designs(design(i) for i in range(len(changes)))
    for change, change_i, (ps, m0) in zip(changes, moved, fitted, strict=True):
        if change.propensity_from is None:
            assert ps is not None
            nuisance = CrossFitted(fold, ps, learners)
        else:
            nuisance = nuisances[change.propensity_from]
        if change.learner is not None:
            nuisance = replace(nuisance, settings=replace(nuisance.settings, learner=change.learner))
        nuisances.append(nuisance)
        assert m0 is not None
        effect = doubly_robust_att(
            change_i, change.after_years, t, nuisance.propensity, m0, rule, scale=1000.0, clusters=clusters,
            observed=change.after_counts,
        )  # fmt: skip
        yield effect, nuisance


def did_design(x: np.ndarray, before_counts: np.ndarray, before_years: float) -> np.ndarray:
    """A design's covariates: ``x`` and the baseline rate (``did_on_change`` returns it; balance is judged on it)."""
    return np.column_stack([x, before_counts / before_years])
