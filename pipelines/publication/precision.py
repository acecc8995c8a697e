"""The release precision policy: how finely every estimate released to funders or agencies is written, in one place.

A count is protected by the cell-key method; an estimate resting on true values (an effect, a mean, a
standardised difference, a probability) is not, and at full precision it is an exact function of the tallies
it was computed from: the unweighted SMD of a binary covariate, with arm sizes near the released ones, has a
single integer solution (carriers k1 of N1 treated, k0 of N0 comparison), which undoes the arms' perturbation;
the mean of a whole-number score times the arm is the exact sum of scores, and two releases' sums give one
person's score (``docs/disclosure.md``, "Precision"). Every guarded value is therefore written to a declared
unit, chosen so that a reader loses nothing they would decide on (an SMD to 0.01 against a threshold of 0.1,
an effect to 0.1 point or admission per 1,000 person-years, money to 1,000 €) and so that the integer search
the auditor runs (``pipelines/publication/tallies.py``) leaves every tally at least four possible values.

A unit is a number (every number of the value, a list's items included, is rounded to it) or a mapping from
a key name to a number (for nested objects: each number is rounded to the unit of the key that holds it,
``*`` for any other key). Derived values computed from released (protected) counts only are not rounded:
they add nothing an attacker does not have, and the auditor recomputes them exactly; a derived value that
rests on a guarded one (the counterfactual: observed minus effect) is recomputed from the rounded values.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import polars as pl

from pipelines.impact.gate import finite_json
from pipelines.publication.schema import TableSchema

Unit = float | Mapping[str, float]

EFFECT = 0.1
"""Effects, observed and counterfactual values, MDEs: 0.1 Zarit point or 0.1 admission per 1,000 person-years."""
BALANCE = 0.01
"""SMDs, variance ratios, E-values, dip ratios, systematic error: read against thresholds of 0.1, 0.25, 2."""
PROBABILITY = 0.001
"""Cumulative incidence and its interval: a tenth of a percentage point."""
MONEY = 1000.0
"""Net savings: to the thousand euros (a funder reads hundreds of thousands)."""
STAYS = 1.0
"""Avoided hospital stays: whole stays."""

_SCENARIO: dict[str, float] = {
    "cost_per_stay": 1.0,  # reference costs (study file), in euros
    "care_management_per_month": 1.0,
    "net_savings": MONEY,
    "net_savings_ci": MONEY,
    "probability_net_savings_positive": BALANCE,
}
_SYSTEMATIC_ERROR: dict[str, float] = {"controls": 1.0, "*": BALANCE}

RELEASE_PRECISION: dict[str, dict[str, Unit]] = {
    "release_studies": {
        "estimate": EFFECT,
        "ci_low": EFFECT,
        "ci_high": EFFECT,
        "standard_error": EFFECT,
        "treated_value": EFFECT,
        "counterfactual_value": EFFECT,
        "estimate_calibrated": EFFECT,
        "ci_low_calibrated": EFFECT,
        "ci_high_calibrated": EFFECT,
        "log_rate_ratio": BALANCE,
        "log_rate_ratio_se": BALANCE,
        "diagnostics.smd_before": BALANCE,
        "diagnostics.smd_after": BALANCE,
        "diagnostics.variance_ratio_after": BALANCE,
        "diagnostics.max_abs_smd_after": BALANCE,
        "diagnostics.minimum_detectable_effect": EFFECT,
        "diagnostics.e_value": BALANCE,
        "diagnostics.e_value_ci": BALANCE,
        "diagnostics.no_variance": 1.0,  # flags
        "diagnostics.design.dip": BALANCE,
        "diagnostics.design.washout_dip": BALANCE,
        "diagnostics.calibration.systematic_error": _SYSTEMATIC_ERROR,
        "diagnostics.calibration.calibrated_log_rate_ratio": BALANCE,
        "diagnostics.calibration.calibrated_standard_error": BALANCE,
        "funder_figures.avoided_unplanned_hospitalisations": STAYS,
        "funder_figures.avoided_ci": STAYS,
        "funder_figures.scenarios": _SCENARIO,
    },
    "release_study_curves": {"cumulative_incidence": PROBABILITY, "ci_low": PROBABILITY, "ci_high": PROBABILITY},
    "release_case_mix": {
        "days_to_first_contact_median": 1.0,
        "days_to_plan_median": 1.0,
        "age_mean": 1.0,  # a year: the mean age times the episodes is otherwise the sum of their ages
    },
}
"""Table -> column (or ``column.dotted.path`` of a JSON key) -> unit. Every guarded column and key has one."""

CHECK_VALUE_UNITS: dict[str, float] = {
    "balance_max_abs_smd": BALANCE,
    "variance_ratio": BALANCE,
    "expected_absolute_systematic_error": BALANCE,
    "pre_trend_placebo": EFFECT,
    "pre_enrolment_dip": BALANCE,
    "negative_controls_estimated": 1.0,
    "agencies_per_arm": 1.0,
}
"""Units of the guarded or safe numeric values of the verdict's checks (arm sizes are protected counts)."""
CHECK_THRESHOLD_UNITS: dict[str, float] = {"pre_trend_placebo": EFFECT}
"""Thresholds that are estimates (the placebo's own interval); the others are the study file's, kept exactly."""
DETAIL_UNITS: dict[str, float] = {"mean": BALANCE, "sd": BALANCE, "ratio": BALANCE}
NUMBER_UNITS: dict[str, Unit] = {
    "estimate": EFFECT,
    "ci_low": EFFECT,
    "ci_high": EFFECT,
    "minimum_detectable_effect": EFFECT,
    "uncalibrated": EFFECT,
    "net_savings": MONEY,
}


def round_to(value: Any, unit: Unit | None) -> Any:
    """A value written to its unit: numbers rounded half to even on the unit's grid (exactly, through
    decimals, so that 0.1 steps print as 0.1), lists item by item, objects key by key; other values as they are.
    A whole number whose unit is 1 or finer stays a whole number."""
    if unit is None or value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, Mapping):
        return {k: round_to(v, _unit_of(unit, k, v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [round_to(v, unit) for v in value]
    if isinstance(unit, Mapping):
        return round_to(value, unit.get("*"))
    if isinstance(value, int) and unit <= 1 and float(1 / unit).is_integer():
        return value
    if not isinstance(value, int | float) or not math.isfinite(value):
        return value
    step = Decimal(str(unit))
    return float((Decimal(repr(float(value))) / step).quantize(Decimal(1), rounding=ROUND_HALF_EVEN) * step)


def _unit_of(unit: Unit, key: str, value: Any) -> Unit | None:
    """The unit of one key of an object: its own, else (for a nested object, such as a cost scenario) the same
    mapping one level down, else the mapping's ``*``."""
    if not isinstance(unit, Mapping):
        return unit
    if key in unit:
        return unit[key]
    return unit if isinstance(value, Mapping) else unit.get("*")


def is_rounded(value: Any, unit: Unit | None) -> bool:
    """Whether a released value is written to its unit (no finer)."""
    if unit is None or value is None or isinstance(value, bool | str):
        return True
    if isinstance(value, Mapping):
        return all(is_rounded(v, _unit_of(unit, k, v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(is_rounded(v, unit) for v in value)
    if isinstance(unit, Mapping):
        return is_rounded(value, unit.get("*"))
    if not isinstance(value, int | float) or not math.isfinite(value):
        return True
    return math.isclose(round_to(value, unit), value, rel_tol=0, abs_tol=1e-9 * max(1.0, abs(value)))


def unit_of(table: str, place: str) -> Unit | None:
    """The declared unit of a column or JSON key (``column.path``) of a released table, or None."""
    return RELEASE_PRECISION.get(table, {}).get(place)


def undeclared(schema: TableSchema) -> list[str]:
    """Guarded columns and guarded JSON keys of a table without a declared precision (``table.place``)."""
    declared = RELEASE_PRECISION.get(schema.name, {})
    places = list(schema.guarded)
    places += [f"{column}.{path}" for column, keys in schema.json.items() for path, k in keys.items()
               if k.kind == "guarded"]  # fmt: skip
    return [f"{schema.name}.{p}" for p in places if p not in declared]


def rounded_tables(tables: Mapping[str, pl.DataFrame], schemas: Mapping[str, TableSchema]) -> dict[str, pl.DataFrame]:
    """An audience's tables with every declared value written to its unit, the verdicts' numbers too; derived
    columns of a table with a declared unit are recomputed from the rounded values, then rounded."""
    out: dict[str, pl.DataFrame] = {}
    for name, frame in tables.items():
        declared = RELEASE_PRECISION.get(name)
        schema = schemas.get(name)
        if not declared or schema is None or frame.height == 0:
            out[name] = frame
            continue
        rows = [_rounded_row(row, schema, declared) for row in frame.iter_rows(named=True)]
        out[name] = pl.DataFrame(rows, schema=frame.schema, orient="row")
    return out


def _rounded_row(row: dict[str, Any], schema: TableSchema, declared: Mapping[str, Unit]) -> dict[str, Any]:
    row = dict(row)
    for column in row:
        if column in schema.derived:
            continue
        if column in schema.json and row[column] is not None:
            document = json.loads(row[column])
            for place, unit in declared.items():
                head, _, path = place.partition(".")
                if head == column and path:
                    _round_path(document, path.split("."), unit)
            row[column] = json.dumps(finite_json(document), allow_nan=False)
        elif column in schema.structured and row[column] is not None:
            row[column] = round_verdict(row[column])
        elif column in declared:
            row[column] = round_to(row[column], declared[column])
    for column, derive in schema.derived.items():
        if column in declared:
            row[column] = round_to(derive(row), declared[column])
    return row


def _round_path(document: Any, keys: list[str], unit: Unit) -> None:
    if not isinstance(document, dict) or keys[0] not in document:
        return
    if len(keys) == 1:
        document[keys[0]] = round_to(document[keys[0]], unit)
    else:
        _round_path(document[keys[0]], keys[1:], unit)


def round_verdict(text: str) -> str:
    """A released verdict with its estimates written to their units (decision, flags and thresholds kept)."""
    raw = json.loads(text)
    for check in raw.get("checks", []):
        check["value"] = round_to(check.get("value"), CHECK_VALUE_UNITS.get(check.get("name", "")))
        check["threshold"] = round_to(check.get("threshold"), CHECK_THRESHOLD_UNITS.get(check.get("name", "")))
        detail = check.get("detail") or {}
        for key in detail:
            detail[key] = round_to(detail[key], DETAIL_UNITS.get(key))
    numbers = raw.get("numbers") or {}
    for key in numbers:
        numbers[key] = round_to(numbers[key], NUMBER_UNITS.get(key))
    return json.dumps(finite_json(raw), allow_nan=False)


def verdict_precision_problems(text: str | None) -> list[str]:
    """For the auditor: numbers of a released verdict written more finely than their unit (named, never valued)."""
    if text is None:
        return []
    raw = json.loads(text)
    problems = []
    for check in raw.get("checks", []):
        name = check.get("name", "")
        if not is_rounded(check.get("value"), CHECK_VALUE_UNITS.get(name)):
            problems.append(f"checks.{name}: written more precisely than its declared unit")
        if not is_rounded(check.get("threshold"), CHECK_THRESHOLD_UNITS.get(name)):
            problems.append(f"checks.{name}.threshold: written more precisely than its declared unit")
        for key, value in (check.get("detail") or {}).items():
            if not is_rounded(value, DETAIL_UNITS.get(key)):
                problems.append(f"checks.{name}.{key}: written more precisely than its declared unit")
    for key, value in (raw.get("numbers") or {}).items():
        if key not in NUMBER_UNITS and _has_number(value):
            problems.append(f"numbers.{key}: a number without a declared precision")
        elif not is_rounded(value, NUMBER_UNITS.get(key)):
            problems.append(f"numbers.{key}: written more precisely than its declared unit")
    return problems


def precision_problems(name: str, frame: pl.DataFrame, schema: TableSchema) -> list[str]:
    """For the auditor: guarded values without a declared unit, or written more precisely than it."""
    problems = undeclared(schema)
    declared = RELEASE_PRECISION.get(name, {})
    for row in frame.iter_rows(named=True):
        for place, unit in declared.items():
            column, _, path = place.partition(".")
            if column not in row or row[column] is None:
                continue
            value = _json_path(json.loads(row[column]), path) if path else row[column]
            if not is_rounded(value, unit):
                problems.append(f"{name}.{place}: written more precisely than its declared unit")
        for column in schema.structured:
            problems += [f"{name}.{column}: {p}" for p in verdict_precision_problems(row.get(column))]
    return sorted(set(problems))


def _has_number(value: Any) -> bool:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return False
    if isinstance(value, Mapping):
        return any(_has_number(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_number(v) for v in value)
    return isinstance(value, int | float)


def _json_path(document: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(document, Mapping):
            return None
        document = document.get(key)
    return document
