"""The verdict of each study row as a funder may read it: the same decision, with only the numbers they may see.

The gate's verdict (``pipelines/impact/gate.py``) travels as JSON with every row of
``mart_impact_studies``: whether the study is publishable, its kind, every check (name, value,
threshold, passed, detail) and the numbers behind it. For funders the release keeps every check's
name, threshold and ``passed`` flag and the verdict's kind and ``publishable`` flag exactly as the
gate wrote them (so ``Verdict.from_json`` re-derives the same decision), and classifies every value:

* arm sizes (``treated_episodes``, ``comparison_episodes``) are the row's *released* (protected)
  counts, or nothing when the count is hidden or the gate stored only that it was too small;
* values that are, or give back, a count are dropped: the treated arm's effective sample size is
  its exact size under ATT weights (and both are dropped, as from the diagnostics), the equipoise
  share times an arm is a count of episodes, an estimation failure's reason is free text;
* estimates (balance, EASE, the placebo and its interval, the dip ratio, the published effect) are
  shown only where both arms of the row are;
* a calibrated effect and interval give back the treated arm's observed rate (calibration is
  symmetric on the log scale: ``T = (e² − lo·hi) / (2e − lo − hi)``), which times the treated
  person-years is a count of events: they are shown only where the row's observed rate
  (``treated_value``) is, i.e. on a study's main row resting on at least 11 events.

What was withheld is listed in ``not_shown`` (in a check's ``detail``, or in ``numbers``) so that
the words (``pipelines/presentation/verdict.py``) say "non communiqué" rather than guess. A check name or key
this module does not classify is refused, like an unclassified column.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pipelines.impact.gate import Verdict, finite_json

ValueClass = Literal["n_treated", "n_comparison", "safe", "guarded", "dropped"]
CHECK_VALUES: dict[str, tuple[ValueClass, Literal["safe", "guarded"]]] = {
    "treated_episodes": ("n_treated", "safe"),
    "comparison_episodes": ("n_comparison", "safe"),
    "balance_max_abs_smd": ("guarded", "safe"),
    "variance_ratio": ("guarded", "safe"),
    "equipoise_share": ("dropped", "safe"),  # a share of an arm: times the arm, a count
    "effective_sample_size_treated": ("dropped", "safe"),  # the treated arm's exact size under ATT weights
    "effective_sample_size_comparison": ("dropped", "safe"),
    "negative_controls_estimated": ("safe", "safe"),  # outcomes, not persons
    "expected_absolute_systematic_error": ("guarded", "safe"),
    "pre_trend_placebo": ("guarded", "guarded"),  # its threshold is the placebo's own interval
    "pre_enrolment_dip": ("guarded", "safe"),
    "agencies_per_arm": ("safe", "safe"),  # agencies, which funders know
    "whole_study_publishable": ("safe", "safe"),
    "estimation": ("safe", "safe"),
}
"""Every check ``gate.py`` and ``study.py`` can write: how its value and its threshold are released."""

DETAIL_KEYS: dict[str, Literal["safe", "guarded", "dropped"]] = {
    "covariate": "safe",
    "without_variance": "guarded",  # "everyone in this arm is GIR 3-4": an attribute of the whole group
    "no_variance_in": "guarded",  # "the comparison arm does not vary": an attribute of the whole arm
    "declared": "safe",
    "months_before": "safe",
    "mean": "guarded",
    "sd": "guarded",
    "ratio": "guarded",
    "reason": "dropped",  # an exception's text may hold a number of rows
    "not_shown": "safe",
}
NUMBER_KEYS: dict[str, Literal["safe", "guarded", "effect"]] = {
    "outcome": "safe",
    "unit": "safe",
    "calibrated": "safe",
    "estimate": "effect",
    "ci_low": "effect",
    "ci_high": "effect",
    "direction": "effect",
    "net_savings": "effect",
    "minimum_detectable_effect": "guarded",
    "uncalibrated": "guarded",
    "not_shown": "safe",
}
"""``effect``: the published estimate, calibrated when ``calibrated`` (then it gives back the observed rate)."""

ARMS = ("n_treated", "n_comparison")
NOT_SHOWN = "not_shown"


class UnclassifiedVerdict(ValueError):
    """A verdict holds a check or key the release does not classify."""


def unclassified(text: str | None) -> list[str]:
    """The check names and keys of a stored verdict this module does not classify (``verdict.<where>``)."""
    if not text:
        return []
    raw = json.loads(text)
    found = [f"verdict.{k}" for k in raw if k not in ("publishable", "kind", "checks", "numbers")]
    for check in raw.get("checks", []):
        name = check.get("name")
        if name not in CHECK_VALUES:
            found.append(f"verdict.checks.{name}")
        found += [f"verdict.checks.detail.{k}" for k in check.get("detail") or {} if k not in DETAIL_KEYS]
    found += [f"verdict.numbers.{k}" for k in raw.get("numbers") or {} if k not in NUMBER_KEYS]
    return found


def _arms_shown(row: Mapping[str, Any]) -> bool:
    return all(row.get(a) is not None for a in ARMS)


def _effect_shown(row: Mapping[str, Any], calibrated: bool) -> bool:
    return _arms_shown(row) and (not calibrated or row.get("treated_value") is not None)


def _size_value(stored: Any, released: Any, threshold: Any, passed: bool) -> Any:
    """An arm size as released: the protected count, unless the gate stored none or the noise crossed the
    threshold (a released 47 under "at least 50, met" would read as a contradiction; the flag stays)."""
    if stored is None or released is None:
        return None
    if isinstance(threshold, int | float) and (released >= threshold) != passed:
        return None
    return released


def size_bounds(text: str | None) -> dict[str, tuple[float, float]]:
    """What a verdict's size checks say about each arm, whatever its value: a check met at threshold t says the
    arm has at least t episodes, one not met fewer than t. The auditor gives these to the attacker (a study
    may set a threshold under 11, and "at least 8: met" narrows a hidden count of 8 to 10 to three values)."""
    if not text:
        return {}
    bounds: dict[str, tuple[float, float]] = {}
    for check in json.loads(text).get("checks", []):
        arm = CHECK_VALUES.get(check.get("name"), ("", ""))[0]
        threshold = check.get("threshold")
        if arm in ARMS and isinstance(threshold, int | float):
            bounds[arm] = (float(threshold), math.inf) if check.get("passed") else (0.0, float(threshold) - 1)
    return bounds


def release_verdict(text: str | None, row: Mapping[str, Any]) -> str | None:
    """The verdict of one study row for funders, given the row's *released* arms and observed rate."""
    if text is None:
        return None
    found = unclassified(text)
    if found:
        raise UnclassifiedVerdict(", ".join(sorted(set(found))))
    raw = json.loads(text)
    arms = _arms_shown(row)
    checks = []
    for check in raw["checks"]:
        value_class, threshold_class = CHECK_VALUES[check["name"]]
        value, threshold = check["value"], check["threshold"]
        if value_class in ARMS:
            value = _size_value(value, row.get(value_class), threshold, bool(check["passed"]))
        elif value_class == "dropped" or (value_class == "guarded" and not arms):
            value = None
        if threshold_class == "guarded" and not arms:
            threshold = None
        detail = {
            k: v
            for k, v in (check.get("detail") or {}).items()
            if DETAIL_KEYS[k] == "safe" or (DETAIL_KEYS[k] == "guarded" and arms)
        }
        withheld = [k for k, v in (check.get("detail") or {}).items() if v is not None and k not in detail]
        withheld += [n for n, before, after in (("value", check["value"], value),
                                                ("threshold", check["threshold"], threshold))
                     if before is not None and after is None]  # fmt: skip
        if withheld:
            detail[NOT_SHOWN] = sorted(withheld)
        checks.append({**check, "value": value, "threshold": threshold, "detail": detail})
    numbers = dict(raw.get("numbers") or {})
    effect = _effect_shown(row, bool(numbers.get("calibrated")))
    withheld = []
    for key, value in list(numbers.items()):
        kind = NUMBER_KEYS[key]
        if value is not None and ((kind == "effect" and not effect) or (kind == "guarded" and not arms)):
            numbers[key] = None
            withheld.append(key)
    if withheld:
        numbers[NOT_SHOWN] = sorted(withheld)
    released = {"publishable": raw["publishable"], "kind": raw["kind"], "checks": checks, "numbers": numbers}
    return json.dumps(finite_json(released), allow_nan=False)


def verdict_problems(row: Mapping[str, Any]) -> list[str]:
    """For the auditor: what in a released row's verdict a funder should not see (named, never valued)."""
    text = row.get("verdict")
    if text is None:
        return []
    try:
        found = unclassified(text)
        raw = json.loads(text)
        verdict = Verdict.from_json(raw)
    except (ValueError, KeyError, TypeError):
        return ["not a verdict"]
    problems = [f"{k}: not classified for release" for k in found]
    if found:
        return problems
    arms = _arms_shown(row)
    if row.get("publishable") is not None and bool(row["publishable"]) != verdict.publishable:
        problems.append("publishable: differs from the verdict's")
    for check in verdict.checks:
        value_class, threshold_class = CHECK_VALUES[check.name]
        if value_class in ARMS and check.value is not None and not _equal(check.value, row.get(value_class)):
            problems.append(f"checks.{check.name}: an arm size that is not the released one")
        if value_class == "dropped" and check.value is not None:
            problems.append(f"checks.{check.name}: a value that is not released")
        if value_class == "guarded" and check.value is not None and not arms:
            problems.append(f"checks.{check.name}: an estimate shown beside a hidden count it rests on")
        if threshold_class == "guarded" and check.threshold is not None and not arms:
            problems.append(f"checks.{check.name}: an estimate shown beside a hidden count it rests on")
        for key, value in check.detail.items():
            if value is not None and (DETAIL_KEYS[key] == "dropped" or (DETAIL_KEYS[key] == "guarded" and not arms)):
                problems.append(f"checks.{check.name}.{key}: a value that is not released")
    effect = _effect_shown(row, bool(verdict.numbers.get("calibrated")))
    for key, value in verdict.numbers.items():
        kind = NUMBER_KEYS[key]
        if value is not None and ((kind == "effect" and not effect) or (kind == "guarded" and not arms)):
            problems.append(f"numbers.{key}: an estimate shown beside a count or rate it rests on that is hidden")
    return problems


def _equal(value: float, released: Any) -> bool:
    return released is not None and math.isclose(float(value), float(released))


def decision_problems(true_rows: Sequence[Mapping[str, Any]], released_rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """For the auditor: released rows whose verdict does not decide what the analyst's does (publishable, kind,
    each check's name, passed flag and threshold), matched by their labels; or a published row without one."""
    truth = {_key(r): r.get("verdict") for r in true_rows}
    problems = []
    for row in released_rows:
        stored, released = truth.get(_key(row)), row.get("verdict")
        if stored is None and released is None:
            continue
        if stored is None or released is None or decision(stored) != decision(released):
            where = f"{row.get('study')}, {row.get('role')}"
            problems.append(f"release_studies.verdict ({where}): not the analyst's decision")
    return problems


def _key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(row.get(c) for c in ("study", "role", "dimension", "dimension_value", "outcome"))


def decision(text: str) -> tuple[bool, str, list[tuple[str, bool, Any]]]:
    """What a verdict decides, for comparing the released one with the analyst's: publishable, kind, and each
    check's name, passed flag and (safe) threshold."""
    verdict = Verdict.from_json(text)
    checks = [
        (c.name, c.passed, c.threshold if CHECK_VALUES.get(c.name, ("", "guarded"))[1] == "safe" else None)
        for c in verdict.checks
    ]
    return verdict.publishable, verdict.kind, checks
