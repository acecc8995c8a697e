"""One gate, one verdict: the only place that decides whether an impact estimate may be published.

Every diagnostic becomes a ``Check`` (its name, value, threshold and whether it passed);
``decide`` turns the checks and the estimate into a ``Verdict``: publishable or not, its kind
(effect detected; no effect detectable above the minimum detectable effect; costs more than it
saves in every cost scenario; not publishable) and the numbers behind it. The verdict is stored
as JSON with each study row (``mart_impact_studies.verdict``) and every output renders it
through ``pipelines/presentation/verdict.py``: nothing downstream decides publishability again.

Before this module, balance thresholds lived in two places (the gate and a ``passed`` table
computed beside the diagnostics) and a page wrote its own "every diagnostic passed" from one
of them while showing the other: the difference-in-differences skipped balance in the gate, so
the page said "passed" over an |SMD| of 0.22. Checks now exist once, and a sentence about them
can only come from the verdict.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from pipelines.impact.calibration import MIN_NEGATIVE_CONTROLS, SystematicError
from pipelines.impact.diagnostics import Diagnostics
from pipelines.impact.estimators import Z95

Kind = Literal["effect_detected", "no_effect_detected", "costs_more_than_it_saves", "not_publishable"]

MDE_MULTIPLIER = 2.8
"""Minimum detectable effect = 2.8 standard errors: 80% power for a two-sided test at 5%."""


@dataclass(frozen=True)
class Check:
    """One pre-set diagnostic: ``passed`` is decided here, from ``value`` and ``threshold``, never elsewhere."""

    name: str
    value: float | None
    threshold: float | list[float] | None
    passed: bool
    detail: dict[str, Any] = field(default_factory=dict)


def at_least(name: str, value: float, threshold: float, **detail: Any) -> Check:
    return Check(name, _finite(value), threshold, bool(value >= threshold), detail)


def below(name: str, value: float | None, threshold: float, **detail: Any) -> Check:
    ok = value is not None and math.isfinite(value) and value < threshold
    return Check(name, _finite(value), threshold, bool(ok), detail)


def at_most(name: str, value: float | None, threshold: float, **detail: Any) -> Check:
    ok = value is not None and math.isfinite(value) and value <= threshold
    return Check(name, _finite(value), threshold, bool(ok), detail)


def within(name: str, value: float | None, low: float, high: float, **detail: Any) -> Check:
    ok = value is not None and math.isfinite(value) and low <= value <= high
    return Check(name, _finite(value), [low, high], bool(ok), detail)


def interval_includes_zero(name: str, estimate: float, low: float, high: float, **detail: Any) -> Check:
    return Check(name, _finite(estimate), [low, high], bool(low <= 0 <= high), detail)


def failure(name: str, reason: str) -> Check:
    """A check that could not even be computed (a model that would not fit, an arm left empty)."""
    return Check(name, None, None, False, {"reason": reason})


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


@dataclass(frozen=True)
class Effect:
    """The estimate a verdict is about, on the study's scale."""

    outcome: str
    unit: str
    estimate: float
    ci_low: float
    ci_high: float
    uncalibrated: tuple[float, float, float] | None = None
    """(estimate, ci_low, ci_high) before empirical calibration, when the published interval is calibrated."""
    lower_is_better: bool = True
    """Admissions, days without help and carer burden: a negative difference is a benefit."""

    @property
    def standard_error(self) -> float:
        return (self.ci_high - self.ci_low) / (2 * Z95)


@dataclass(frozen=True)
class Verdict:
    publishable: bool
    kind: Kind
    checks: list[Check]
    numbers: dict[str, Any]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def as_json(self) -> dict[str, Any]:
        return {
            "publishable": self.publishable,
            "kind": self.kind,
            "checks": [asdict(c) for c in self.checks],
            "numbers": self.numbers,
        }

    def dumps(self) -> str:
        return json.dumps(finite_json(self.as_json()), allow_nan=False)

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> Verdict:
        raw = json.loads(data) if isinstance(data, str) else data
        checks = [
            Check(c["name"], c["value"], c["threshold"], bool(c["passed"]), c.get("detail", {})) for c in raw["checks"]
        ]
        # A stored verdict that claims publication over a failed check is read as not publishable.
        publishable = bool(raw["publishable"]) and bool(checks) and all(c.passed for c in checks)
        kind: Kind = raw["kind"] if publishable else "not_publishable"
        return cls(publishable, kind, checks, raw.get("numbers", {}))


def finite_json(value: Any) -> Any:
    """``value`` with numpy scalars made plain and non-finite numbers made None (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def decide(checks: list[Check], effect: Effect | None, net_savings: dict[str, float] | None) -> Verdict:
    """The verdict: publishable only when every check passed and there is an estimate.

    Kinds, in order: ``not_publishable`` (a check failed, or nothing could be estimated);
    ``no_effect_detected`` (the published interval includes no effect: the numbers carry the
    minimum detectable effect, what the study could have seen); ``costs_more_than_it_saves``
    (an effect, but net savings are negative in every cost scenario); ``effect_detected``.
    """
    numbers: dict[str, Any] = {}
    if effect is not None:
        numbers = {
            "outcome": effect.outcome,
            "unit": effect.unit,
            "estimate": effect.estimate,
            "ci_low": effect.ci_low,
            "ci_high": effect.ci_high,
            "calibrated": effect.uncalibrated is not None,
            "minimum_detectable_effect": MDE_MULTIPLIER * effect.standard_error,
            "direction": _direction(effect),
        }
        if effect.uncalibrated is not None:
            numbers["uncalibrated"] = dict(zip(("estimate", "ci_low", "ci_high"), effect.uncalibrated, strict=True))
        if net_savings:
            numbers["net_savings"] = dict(net_savings)
    publishable = effect is not None and all(c.passed for c in checks) and bool(checks)
    kind: Kind
    if not publishable:
        kind = "not_publishable"
    elif effect is not None and effect.ci_low <= 0 <= effect.ci_high:
        kind = "no_effect_detected"
    elif net_savings and all(v < 0 for v in net_savings.values()):
        kind = "costs_more_than_it_saves"
    else:
        kind = "effect_detected"
    return Verdict(publishable, kind, list(checks), numbers)


def _direction(effect: Effect) -> str:
    if effect.estimate == 0:
        return "none"
    return "reduction" if effect.estimate < 0 else "increase"


class _Limits(Protocol):
    max_abs_smd: float
    variance_ratio: tuple[float, float]
    min_treated: int
    min_comparison: int
    equipoise_share: float | None
    min_effective_sample_size: float
    max_ease: float
    ease_when_detectable: bool


def size_checks(limits: _Limits, n_treated: int, n_comparison: int) -> list[Check]:
    """Enough episodes in each arm (11 by default: the disclosure threshold).

    A count below its threshold is not stored (only that it is below): the verdict travels with
    every row, subgroups included, and a small count is exactly what disclosure control blanks.
    """
    checks = []
    for name, count, threshold in (
        ("treated_episodes", n_treated, limits.min_treated),
        ("comparison_episodes", n_comparison, limits.min_comparison),
    ):
        passed = count >= threshold
        checks.append(Check(name, float(count) if passed else None, threshold, passed))
    return checks


def balance_checks(limits: _Limits, diagnostics: Diagnostics) -> list[Check]:
    """Balance of every adjusted covariate, its variance ratios, equipoise when declared, and effective sizes."""
    smd = np.abs(np.asarray(diagnostics.smd_after, dtype=float))
    names = diagnostics.covariates or [f"covariate {i + 1}" for i in range(smd.shape[0])]
    worst = int(np.nanargmax(smd)) if smd.size and np.isfinite(smd).any() else None
    ratios = np.asarray(diagnostics.variance_ratio_after, dtype=float)
    # A covariate that varies in neither arm (GIR 3-4 inside the GIR 3-4 subgroup) has no ratio: it carries no
    # imbalance of spread, and is named in the check rather than judged. One arm constant: a ratio of 0 or inf.
    judged = np.flatnonzero(~np.isnan(ratios))
    low, high = limits.variance_ratio
    # The ratio farthest from 1 on the log scale decides (0.4 is as far off as 2.5).
    with np.errstate(divide="ignore"):
        distance = np.abs(np.log(ratios[judged]))
    farthest = int(judged[np.argmax(distance)]) if judged.size else None
    checks = [
        below(
            "balance_max_abs_smd",
            float(smd[worst]) if worst is not None else 0.0,
            limits.max_abs_smd,
            covariate=names[worst] if worst is not None and worst < len(names) else None,
        ),
        within(
            "variance_ratio",
            float(ratios[farthest]) if farthest is not None else 1.0,
            low,
            high,
            covariate=names[farthest] if farthest is not None and farthest < len(names) else None,
            without_variance=diagnostics.without_variance,
            **({"no_variance_in": "comparison"} if farthest is not None and ratios[farthest] == np.inf else {}),
        ),
    ]
    if limits.equipoise_share is not None:
        checks.append(at_least("equipoise_share", diagnostics.equipoise_share, limits.equipoise_share))
    for arm, key in (("treated", "treated"), ("comparison", "control")):
        ess = float(diagnostics.effective_sample_size.get(key, 0.0))
        checks.append(at_least(f"effective_sample_size_{arm}", ess, limits.min_effective_sample_size))
    return checks


def calibration_checks(limits: _Limits, declared: int, error: SystematicError | None) -> list[Check]:
    """At least ``MIN_NEGATIVE_CONTROLS`` negative controls estimated, and a small expected systematic error.

    EASE is judged only when the controls can detect a systematic error as large as ``max_ease``
    (``SystematicError.ease_judged``; unless the study says ``ease_when_detectable: false``): rare controls
    give a noisy EASE that would refuse sound studies by chance. Unjudged, it is no check at all (the
    calibration details report it with the smallest error the controls could have detected), and the
    published interval is still the calibrated one, which carries the controls' uncertainty.
    """
    estimated = error.controls if error is not None else 0
    checks = [at_least("negative_controls_estimated", estimated, MIN_NEGATIVE_CONTROLS, declared=declared)]
    if error is not None and limits.ease_when_detectable and not error.ease_judged(limits.max_ease):
        return checks
    ease = error.expected_absolute_error if error is not None else None
    detail = {"mean": error.mean, "sd": error.sd} if error is not None else {}
    checks.append(at_most("expected_absolute_systematic_error", ease, limits.max_ease, **detail))
    return checks
