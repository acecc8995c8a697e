"""The auditor's interval widths on one warm-started HiGHS model per group, against ``scipy.optimize.linprog``.

``audit._widths`` used to solve each of its linear programmes with ``linprog`` (two per target, the model
rebuilt each time); it now changes only the objective of one model per group of related cells. The
programmes are the same, so the widths must be: ``linprog`` is the oracle, kept here as it was written
in the auditor. Every group the attacker builds on random ledgers (counts and sums, hidden, perturbed and
implicit cells, two breakdowns of one total, remainders, distinct persons) is solved both ways.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from pipelines.publication import audit
from pipelines.publication.errors import PublicationError
from pipelines.publication.ledger import Cell, CellId, CellKind, Ledger
from pipelines.publication.rules import MAX_NOISE
from tests.hypothesis_budget import examples


def linprog_widths(
    bounds: list[tuple[float, float]],
    equalities: list[tuple[dict[int, float], float]],
    inequalities: list[dict[int, float]],
    targets: list[int],
    integer: list[bool],
    kinds: tuple[str, ...],
) -> list[float]:
    """The auditor's widths as computed before (commit f5dc444): two ``linprog`` calls per target."""
    n = len(bounds)
    a_eq = np.zeros((len(equalities), n))
    for i, (row, _) in enumerate(equalities):
        for j, v in row.items():
            a_eq[i, j] = v
    a_ub = np.zeros((len(inequalities), n))
    for i, row in enumerate(inequalities):
        for j, v in row.items():
            a_ub[i, j] = v
    widths = []
    for target, whole in zip(targets, integer, strict=True):
        ends = []
        for sign in (1.0, -1.0):
            objective = np.zeros(n)
            objective[target] = sign
            result = linprog(
                objective,
                A_ub=a_ub if inequalities else None,
                b_ub=np.zeros(len(inequalities)) if inequalities else None,
                A_eq=a_eq if equalities else None,
                b_eq=np.zeros(len(equalities)) if equalities else None,
                bounds=[(lo, None if math.isinf(hi) else hi) for lo, hi in bounds],
                method="highs",
            )
            if result.status == 3:
                ends.append(math.inf if sign < 0 else -math.inf)
                continue
            if result.status != 0:
                raise PublicationError("contradiction")
            ends.append(sign * result.fun)
        low, high = (math.ceil(ends[0] - 1e-6), math.floor(ends[1] + 1e-6)) if whole else (ends[0], ends[1])
        widths.append(high - low)
    return widths


def _both(pairs: list[tuple[list[float], list[float]]]) -> Callable[..., list[float]]:
    """``audit._widths`` that also solves the group with ``linprog`` and keeps both widths in ``pairs``; a
    contradiction must be one for both."""
    highs_widths = audit._widths

    def both(*args: Any) -> list[float]:
        try:
            expected = linprog_widths(*args)
        except PublicationError:
            with pytest.raises(PublicationError):
                highs_widths(*args)
            raise
        got = highs_widths(*args)
        pairs.append((got, expected))
        return got

    return both


@pytest.fixture
def compared(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[float], list[float]]]:
    """Every group the attacker solves is solved by ``linprog`` too; the pairs of widths, for the test."""
    pairs: list[tuple[list[float], list[float]]] = []
    monkeypatch.setattr(audit, "_widths", _both(pairs))
    return pairs


def _same(got: list[float], expected: list[float]) -> bool:
    if len(got) != len(expected):
        return False
    return all(
        g == e or (math.isfinite(e) and abs(g - e) <= 1e-9 * max(1.0, abs(e)))
        for g, e in zip(got, expected, strict=True)
    )


@st.composite
def ledgers(draw: st.DrawFn) -> Ledger:
    """A total (shown, perturbed or implicit) with one or two breakdowns, some parts hidden, and maybe a
    remainder (parts that do not add up to it), of counts or of sums."""
    kind: CellKind = draw(st.sampled_from(["count", "magnitude"]))
    value = st.integers(0, 60) if kind == "count" else st.floats(0.0, 60.0, allow_nan=False).map(lambda v: round(v, 2))
    ledger = Ledger()
    distinct = kind == "count" and draw(st.booleans())
    breakdowns = []
    for b in range(draw(st.integers(1, 2))):
        parts = draw(st.lists(value, min_size=1, max_size=5))
        breakdowns.append((b, parts))
    sums = [sum(parts) for _, parts in breakdowns]
    extra = draw(st.sampled_from([0, 0, 3, 12])) if kind == "count" else draw(st.sampled_from([0.0, 2.5]))
    total_value = (min(sums) if distinct else max(sums)) + extra
    total = CellId("t", ("total",), "n")
    shown = draw(st.sampled_from(["exact", "perturbed", "implicit"]))
    noise = float(MAX_NOISE) if shown == "perturbed" else 0.0
    released = None if shown == "implicit" else total_value + draw(st.integers(-int(noise), int(noise)))
    ledger.add(Cell(total, kind, total_value, released, noise, implicit=shown == "implicit"))
    for b, parts in breakdowns:
        cells = []
        for i, v in enumerate(parts):
            cell = CellId("t", (f"b{b}", str(i)), "n")
            state = draw(st.sampled_from(["hidden", "exact", "perturbed"]))
            if state == "hidden":
                ledger.add(Cell(cell, kind, v, None, 0.0))
            elif state == "exact":
                ledger.add(Cell(cell, kind, v, v, 0.0))
            else:
                shift = draw(st.integers(-MAX_NOISE, MAX_NOISE))
                ledger.add(Cell(cell, kind, v, max(0, v + shift), float(MAX_NOISE)))
            cells.append(cell)
        ledger.relate(f"breakdown {b}", total, cells, distinct)
    return ledger


@settings(max_examples=examples(300), deadline=None)
@given(ledger=ledgers())
def test_the_widths_are_linprogs_on_every_group_the_attacker_builds(ledger: Ledger) -> None:
    pairs: list[tuple[list[float], list[float]]] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(audit, "_widths", _both(pairs))
        try:
            audit.attack(ledger)
        except PublicationError:
            return
    for got, expected in pairs:
        assert _same(got, expected), (got, expected)


def test_the_widths_are_linprogs_on_hand_made_groups(compared: list[tuple[list[float], list[float]]]) -> None:
    # Issue 13's slips (the hidden "95 and over" subgroup, a blank bin) and two breakdowns of one total.
    exact = Ledger()
    total = CellId("t", ("total",), "n")
    exact.add(Cell(total, "count", 330, 330, 0.0))
    parts = []
    for i, v in enumerate([120, 110, 90, 10]):
        cell = CellId("t", (str(i),), "n")
        exact.add(Cell(cell, "count", v, None if i == 3 else v, 0.0))
        parts.append(cell)
    exact.relate("subgroups of a study", total, parts)
    assert [r.width for r in audit.attack(exact)[1]] == [0]
    perturbed = Ledger()
    perturbed.add(Cell(total, "count", 330, 333, MAX_NOISE))
    shown, hidden = CellId("t", ("shown",), "n"), CellId("t", ("hidden",), "n")
    perturbed.add(Cell(shown, "count", 320, 317, MAX_NOISE))
    perturbed.add(Cell(hidden, "count", 10, None, 0.0))
    perturbed.relate("breakdown", total, [shown, hidden])
    assert [r.width for r in audit.attack(perturbed)[1]] == [0]
    unbounded = Ledger()
    unbounded.add(Cell(total, "magnitude", 40.0, None, 0.0, implicit=True))
    unbounded.add(Cell(shown, "magnitude", 30.0, None, 0.0))
    unbounded.add(Cell(hidden, "magnitude", 10.0, None, 0.0))
    unbounded.relate("breakdown", total, [shown, hidden])
    assert audit.attack(unbounded) == (3, [])  # the implicit total is a target too
    assert len(compared) == 3
    for got, expected in compared:
        assert _same(got, expected), (got, expected)
    assert compared[2][0] == [math.inf] * 3
