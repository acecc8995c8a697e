"""The auditor's integer search: released estimates that are functions of small tallies, attacked as the red team did.

Some estimates a funder reads are exact functions of a few whole numbers the release never shows:

* the unweighted standardised difference of a binary covariate (``diagnostics.smd_before``) is a function of
  four: k1 carriers of N1 treated, k0 of N0 comparison (``pipelines/impact/diagnostics.py``: difference of
  proportions over the root of the mean of the two arms' variances);
* the observed mean of a whole-number score (``treated_value`` of a study not measured per person-year, the
  Zarit change) times the treated arm is the sum of the treated persons' scores.

The attacker knows each released arm to within the perturbation (``MAX_NOISE``, at least ``MIN_CELL``) and
knows the value to within half its declared unit (``pipelines/publication/precision.py``; a value with none
is taken as exact). For every arm sizes in that box and every k1, the k0 that reproduce the SMD form an
interval (the SMD falls as k0 grows), found by bisection for all k1 at once. The arm sizes consistent with
every covariate survive; a tally (an arm size, a covariate's carriers in an arm, a sum of scores) left with
fewer than ``PROTECTION_WIDTH + 1`` possible values is **narrowed**, and the release is refused: no tally is
pinned more tightly than a released count of 11 is (11 to 14).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from pipelines.publication.precision import is_rounded, unit_of
from pipelines.publication.rules import MAX_NOISE, MIN_CELL, PROTECTION_WIDTH

STUDIES = "release_studies"
EXACT = 1e-12
"""Relative tolerance for a value released without a declared unit (float rounding of the engine's arithmetic)."""
NARROW = PROTECTION_WIDTH + 1
"""A tally with fewer possible values than this is narrowed."""


def arm_box(released: int) -> range:
    """The true sizes an attacker allows for a released arm."""
    return range(max(MIN_CELL, released - MAX_NOISE), released + MAX_NOISE + 1)


def band(value: float, unit: float | None) -> tuple[float, float]:
    """The values a released number may have had before it was written to its unit."""
    if not unit:
        slack = EXACT * max(1.0, abs(value))
        return value - slack, value + slack
    half = unit / 2 + 1e-9 * max(1.0, abs(value))
    return value - half, value + half


def binary_smd(k1: np.ndarray, n1: np.ndarray | int, k0: np.ndarray, n0: np.ndarray | int) -> np.ndarray:
    """The engine's SMD of a 0/1 covariate from its carriers in each arm (population variances; 0 when neither
    arm varies)."""
    p1, p0 = k1 / n1, k0 / n0
    pooled = np.sqrt((p1 * (1 - p1) + p0 * (1 - p0)) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(pooled > 0, (p1 - p0) / np.where(pooled > 0, pooled, 1.0), p1 - p0)


def _first_at_most(limit: float, k1: np.ndarray, n1: np.ndarray, n0: np.ndarray) -> np.ndarray:
    """For each arm pair (rows) and k1 (columns), the least k0 whose SMD is at most ``limit`` (one past the last
    k0 when none is), among the k0 where the SMD falls as k0 grows: all of 0..n0 but the two corners where one
    arm has every carrier and the other none (there the engine's SMD is the difference of proportions, ±1)."""
    floor = np.where(k1 == n1, 1, 0)
    ceiling = np.where(k1 == 0, n0 - 1, n0)
    low, high = np.broadcast_arrays(floor, ceiling + 1)
    low, high = low.copy(), high.copy()
    while np.any(low < high):
        middle = (low + high) // 2
        ok = (middle <= ceiling) & (binary_smd(k1, n1, np.minimum(middle, n0), n0) <= limit)
        open_ = low < high
        high = np.where(open_ & ok, middle, high)
        low = np.where(open_ & ~ok, middle + 1, low)
    return np.asarray(low)


def smd_solutions(
    value: float, unit: float | None, n1: np.ndarray, n0: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For arm pairs (``n1``, ``n0``: column vectors) and every k1 up to the largest n1 (columns): whether some
    k0 reproduces a released SMD, and the interval of those k0 (first, last); and, per pair, which of the two
    corners reproduce it ((k1, k0) = (0, n0) in column 0, (n1, 0) in column 1)."""
    found, first, last = _solve_columns(value, unit, n1, n0, np.arange(int(n1.max()) + 1))
    return found, first, last, _corners(value, unit, n1)


def _solve_columns(
    value: float, unit: float | None, n1: np.ndarray, n0: np.ndarray, columns: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``smd_solutions`` for the carrier counts ``columns`` of the first arm only (a column past a pair's n1
    finds nothing)."""
    low, high = band(value, unit)
    k1 = np.minimum(columns[None, :], n1)
    first = _first_at_most(high, k1, n1, n0)
    past = _first_at_most(np.nextafter(low, -math.inf), k1, n1, n0)
    found = (columns[None, :] <= n1) & (first <= past - 1)
    return found, first, past - 1


def _corners(value: float, unit: float | None, n1: np.ndarray) -> np.ndarray:
    low, high = band(value, unit)
    return np.hstack([(low <= -1.0) & (high >= -1.0) & np.ones_like(n1, dtype=bool),
                      (low <= 1.0) & (high >= 1.0) & np.ones_like(n1, dtype=bool)])  # fmt: skip


SCAN_COLUMNS = 256
"""Carrier counts of the first arm searched at a time, for every arm pair still open (see ``_solutions``)."""


def _middle_out(width: int, size: int) -> list[np.ndarray]:
    """0..width-1 in blocks of ``size``, the middle block first, then outwards: in arms of any size the middle
    carrier counts reproduce almost any released SMD, the extremes only large ones."""
    middle = width / 2
    blocks = [np.arange(start, min(start + size, width)) for start in range(0, width, size)]
    return sorted(blocks, key=lambda b: abs((b[0] + b[-1]) / 2 - middle))


@dataclass(frozen=True)
class _Solutions:
    """One released SMD's integer solutions found, as parallel arrays: arm pair (its row), k1, and the interval
    of k0 (first, last); ``any`` per pair: whether any k1 was found."""

    pair: np.ndarray
    k1: np.ndarray
    first: np.ndarray
    last: np.ndarray
    any: np.ndarray


def _solutions(value: float, unit: float | None, n1: np.ndarray, n0: np.ndarray) -> _Solutions:
    """The solutions of one SMD, searched block by block of k1; a pair's search stops once it has found
    ``NARROW`` carrier counts of the first arm with ``NARROW`` distinct least k0.

    Stopping there decides what the full search decides: a pair that stopped is a survivor of this SMD
    (it has solutions) and, if it survives the others, it alone gives each arm's carriers at least ``NARROW``
    possible values, so neither is narrowed, whatever the unsearched counts hold; a pair with fewer solutions
    is searched to the end, so a narrowed tally's count of values is the full search's. Without it, the search
    of one SMD grows with the smaller arm (49 pairs times every carrier count, twice bisected): minutes a
    release at a million persons, where the arms hold tens of thousands."""
    pairs = len(n1)
    open_ = np.ones(pairs, dtype=bool)
    counted = np.zeros(pairs, dtype=np.int64)
    least: list[set[int]] = [set() for _ in range(pairs)]
    parts: list[tuple[np.ndarray, ...]] = []
    for columns in _middle_out(int(n1.max()) + 1, SCAN_COLUMNS):
        rows = np.flatnonzero(open_)
        if rows.size == 0:
            break
        found, first, last = _solve_columns(value, unit, n1[rows], n0[rows], columns)
        at, col = np.nonzero(found)
        parts.append((rows[at], columns[col], first[at, col], last[at, col]))
        counted[rows] += found.sum(axis=1)
        for i, row in enumerate(rows):
            if len(least[row]) < NARROW:
                least[row].update(first[i, found[i]][: NARROW * 4].tolist())
        open_[rows] = ~((counted[rows] >= NARROW) & np.array([len(least[r]) >= NARROW for r in rows]))
    pair, k1, first_k0, last_k0 = (np.concatenate(column) for column in zip(*parts, strict=True))  # never empty
    return _Solutions(pair, k1, first_k0, last_k0, np.bincount(pair, minlength=pairs) > 0)


@dataclass(frozen=True)
class Narrowed:
    what: str
    """The tally, named without a value (e.g. "carriers of a binary covariate in the comparison arm")."""
    values: int


def smd_attack(
    smds: Sequence[float | None], unit: float | None, treated: int, comparison: int
) -> tuple[list[Narrowed], set[tuple[int, int]]]:
    """The tallies a main row's released SMDs narrow, and the arm sizes consistent with all of them.

    The search runs over every carrier count of the smaller arm and bisects the larger (the SMD with the arms
    swapped is the same SMD negated): a few times faster on a study of 2,000 treated and 600 comparison."""
    swap = comparison < treated
    values = [None if v is None else (-v if swap else v) for v in smds]
    first_arm, second_arm = (comparison, treated) if swap else (treated, comparison)
    survivors, carriers = _smd_search(values, unit, first_arm, second_arm)
    if swap:
        survivors = {(b, a) for a, b in survivors}
        carriers = [(c2, c1) for c1, c2 in carriers]
    if not carriers:
        return [], survivors
    narrowed = []
    sizes_treated, sizes_comparison = {a for a, _ in survivors}, {b for _, b in survivors}
    if len(sizes_treated) < min(NARROW, len(arm_box(treated))):
        narrowed.append(Narrowed("the treated arm's size", len(sizes_treated)))
    if len(sizes_comparison) < min(NARROW, len(arm_box(comparison))):
        narrowed.append(Narrowed("the comparison arm's size", len(sizes_comparison)))
    for carriers_treated, carriers_comparison in carriers:
        if carriers_treated < NARROW:
            narrowed.append(Narrowed("carriers of a binary covariate in the treated arm", carriers_treated))
        if carriers_comparison < NARROW:
            narrowed.append(Narrowed("carriers of a binary covariate in the comparison arm", carriers_comparison))
    return narrowed, survivors


def _smd_search(
    smds: Sequence[float | None], unit: float | None, first_arm: int, second_arm: int
) -> tuple[set[tuple[int, int]], list[tuple[int, int]]]:
    """The arm-size pairs consistent with every SMD (first arm's carriers k1 against the second's k0), and for
    each SMD some pair reproduces, how many carrier counts of each arm remain possible."""
    pairs = [(a, b) for a in arm_box(first_arm) for b in arm_box(second_arm)]
    n1 = np.array([a for a, _ in pairs])[:, None]
    n0 = np.array([b for _, b in pairs])[:, None]
    solved = []
    alive = np.ones(len(pairs), dtype=bool)
    for value in smds:
        if value is None or not math.isfinite(value):
            continue
        found, corners = _solutions(float(value), unit, n1, n0), _corners(float(value), unit, n1)
        if found.any.any() or corners.any():  # a covariate no pair reproduces is not binary: it says nothing here
            solved.append((found, corners))
            alive &= found.any | corners.any(axis=1)
    survivors = {p for p, keep in zip(pairs, alive, strict=True) if keep}
    carriers = []
    for found, corners in solved:
        kept = alive[found.pair]
        first_values = set(found.k1[kept].tolist())
        coverage = np.zeros(int(n0.max()) + 2, dtype=np.int64)  # k0 values covered by some interval
        np.add.at(coverage, found.first[kept], 1)
        np.add.at(coverage, found.last[kept] + 1, -1)
        second_values = set(np.flatnonzero(np.cumsum(coverage) > 0).tolist())
        for (a, b), (none_first, all_first) in zip(pairs, corners & alive[:, None], strict=True):
            if none_first:  # (0, n0): every carrier in the second arm
                first_values.add(0)
                second_values.add(b)
            if all_first:
                first_values.add(a)
                second_values.add(0)
        carriers.append((len(first_values), len(second_values)))
    return survivors, carriers


def score_sums(value: float, unit: float | None, sizes: Iterable[int]) -> set[int]:
    """The whole-number sums of scores that, over an arm of one of ``sizes``, give the released mean."""
    low, high = band(value, unit)
    sums: set[int] = set()
    for n in sizes:
        sums |= set(range(math.ceil(low * n), math.floor(high * n) + 1))
        if len(sums) >= NARROW:
            break
    return sums


def row_attack(row: Mapping[str, Any]) -> list[Narrowed]:
    """What the integer search narrows on one released study row (its main row's diagnostics and mean)."""
    treated, comparison = row.get("n_treated"), row.get("n_comparison")
    if row.get("role") != "main" or treated is None or comparison is None:
        return []
    smds = tuple(json.loads(row.get("diagnostics") or "{}").get("smd_before") or ())
    value = row.get("treated_value")
    if "person-years" in str(row.get("unit")):
        value = None  # a rate: its events rest on person-years the row does not show (docs/disclosure.md)
    return list(_attack(smds, _unit(smds, "diagnostics.smd_before"), int(treated), int(comparison),
                        value, _unit(value, "treated_value")))  # fmt: skip


@functools.lru_cache(maxsize=256)
def _attack(
    smds: tuple[float | None, ...],
    smd_unit: float | None,
    treated: int,
    comparison: int,
    mean: float | None,
    mean_unit: float | None,
) -> tuple[Narrowed, ...]:
    """The search for one row (the auditor attacks the same row in every round and on the written file)."""
    narrowed, survivors = smd_attack(smds, smd_unit, treated, comparison)
    if mean is not None:
        sizes = sorted({a for a, _ in survivors}) if survivors else list(arm_box(treated))
        sums = score_sums(float(mean), mean_unit, sizes)
        if len(sums) < NARROW:
            narrowed.append(Narrowed("the treated arm's sum of scores (observed mean times the arm)", len(sums)))
    return tuple(narrowed)


def _unit(value: Any, place: str) -> float | None:
    """The unit the attacker may assume a released value was written to: its declared one, when the value is
    written to it; otherwise none (the value is taken as exact)."""
    unit = unit_of(STUDIES, place)
    return unit if isinstance(unit, float) and is_rounded(value, unit) else None


def tally_problems(name: str, frame: pl.DataFrame) -> list[str]:
    """For the auditor: released study rows whose estimates narrow a tally (named, never valued)."""
    if name != STUDIES or "diagnostics" not in frame.columns:
        return []
    problems = []
    for row in frame.iter_rows(named=True):
        for found in row_attack(row):
            problems.append(f"{STUDIES} ({row['study']}, main): {found.what} is narrowed to fewer than {NARROW} "
                            f"values by the released estimates")  # fmt: skip
    return sorted(set(problems))
