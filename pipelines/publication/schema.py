"""What each released table's columns are, declared once: the builders fill them, the auditor checks them.

Every column of a released table is classified; a column that is not is never released (the
auditor refuses the release, and ``tests/test_disclosure.py`` refuses a mart column the study
release does not classify):

* ``labels`` identify a row (breakdown, cohort, period, study, day…): words and codes, never a case value;
* ``counts`` are persons or events, protected cell by cell (released as 0, hidden under 11, or
  perturbed by the cell-key method), each one a cell of the release's ledger;
* ``magnitudes`` are sums that grow with a count (person-years, hours, expected events): hidden with
  their row, otherwise rounded and perturbed, also ledger cells;
* ``derived`` columns are computed from the row's *released* values only (a rate from the released
  count and person-years, an interval from the released count, a share from released counts), so
  they add nothing an attacker did not have; the auditor recomputes them;
* ``guarded`` columns are estimates (effects, medians, means) shown only when every count they rest
  on is released: the auditor checks that they are empty wherever one of those counts is hidden;
* ``safe`` columns carry no count of persons (flags, reference costs, agencies per model, staff FTE).

JSON columns are classified key by key in the same way (``json``): a nested key by its dotted path
(``design.treated_trimmed``), or as a whole by its parent's path. A JSON column too structured for
that (the studies' verdict: a list of checks, each with its own rule) is ``structured``: a function
checks each released row and returns what it finds wrong.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Row = Mapping[str, Any]
Derivation = Callable[[Row], float | None]
RowRule = Callable[[Row], list[str]]
KeyClass = Literal["label", "count", "magnitude", "derived", "guarded", "safe", "list"]


@dataclass(frozen=True)
class JsonKey:
    """One key of a JSON column: its class, and for derived or guarded keys their rule."""

    kind: KeyClass
    derive: Callable[[Row, Mapping[str, Any]], Any] | None = None
    guards: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableSchema:
    name: str
    labels: tuple[str, ...]
    counts: tuple[str, ...] = ()
    magnitudes: tuple[str, ...] = ()
    derived: Mapping[str, Derivation] = field(default_factory=dict)
    guarded: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    safe: tuple[str, ...] = ()
    json: Mapping[str, Mapping[str, JsonKey]] = field(default_factory=dict)
    """JSON column -> key path (dotted; list items share their list's path) -> class."""
    structured: Mapping[str, RowRule] = field(default_factory=dict)
    """JSON column -> the rule that checks it, row by row (problems named without values)."""

    @property
    def columns(self) -> tuple[str, ...]:
        return (
            *self.labels,
            *self.counts,
            *self.magnitudes,
            *self.derived,
            *self.guarded,
            *self.safe,
            *self.json,
            *self.structured,
        )

    def row_labels(self, row: Row) -> tuple[str, ...]:
        return tuple("" if row[c] is None else str(row[c]) for c in self.labels)


Z95 = 1.959964


def per_1000(count: float | None, exposure: float | None) -> float | None:
    if count is None or exposure is None or exposure <= 0:
        return None
    return 1000.0 * count / exposure


def byar_low(count: float | None, exposure: float | None, scale: float = 1000.0) -> float | None:
    """Lower 95% limit of a Poisson rate (Byar's approximation), as the marts compute it."""
    if count is None or exposure is None or exposure <= 0:
        return None
    if count == 0:
        return 0.0
    return scale * count * (1 - 1 / (9.0 * count) - Z95 / (3 * math.sqrt(count))) ** 3 / exposure


def byar_high(count: float | None, exposure: float | None, scale: float = 1000.0) -> float | None:
    if count is None or exposure is None or exposure <= 0:
        return None
    upper = count + 1
    return scale * upper * (1 - 1 / (9.0 * upper) + Z95 / (3 * math.sqrt(upper))) ** 3 / exposure


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def same(released: Any, expected: Any, tolerance: float = 1e-9) -> bool:
    """Whether a released derived value equals its recomputation from released values."""
    if released is None or expected is None:
        return released is None and expected is None
    if isinstance(expected, list | tuple):
        return (
            isinstance(released, list | tuple)
            and len(released) == len(expected)
            and all(same(r, e, tolerance) for r, e in zip(released, expected, strict=True))
        )
    return math.isclose(float(released), float(expected), rel_tol=tolerance, abs_tol=tolerance)
