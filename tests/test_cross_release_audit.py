"""The auditor attacks a release together with the earlier ones an audience was shown.

A hand-made case: a total of 25 released exactly, a part of 5 hidden, the other part of 20 hidden as its
complement, and the release says the part is at least 5 (a study's check "at least 5 episodes: met").
Alone, the release leaves the part 5 to 10. But an earlier release showed the complement (20, the same
count, so the same noise under the cell-key method: 21, meaning 18 to 24): with it, the attacker narrows
the part to 5 to 7, fewer than the four values a hidden count must keep. ``cross_release_bounds`` gives
the auditor exactly that knowledge, only for counts that did not change."""

from __future__ import annotations

import polars as pl

from pipelines.publication.audit import attack
from pipelines.publication.ledger import Cell, CellId, Ledger
from pipelines.publication.release import EarlierRelease, cross_release_bounds
from pipelines.publication.schema import TableSchema

SCHEMA = TableSchema("release_areas", labels=("area",), counts=("persons",))
TOTAL, SMALL, COMPLEMENT = (CellId("release_areas", (a,), "persons") for a in ("all", "small", "large"))


def _ledger(complement_true: float = 20) -> Ledger:
    ledger = Ledger()
    ledger.add(Cell(TOTAL, "count", 5 + complement_true, 5 + complement_true, noise=0))
    ledger.add(Cell(SMALL, "count", 5, None, noise=0))
    ledger.add(Cell(COMPLEMENT, "count", complement_true, None, noise=0))
    ledger.relate("breakdown", TOTAL, [SMALL, COMPLEMENT])
    ledger.bound(SMALL, 5, 10)
    return ledger


def _earlier(complement_shown: float, complement_true: float) -> EarlierRelease:
    shown = pl.DataFrame({"area": ["all", "small", "large"], "persons": [None, None, complement_shown]})
    true = pl.DataFrame({"area": ["all", "small", "large"], "persons": [30.0, 10.0, complement_true]})
    return EarlierRelease("2026-Q1", {SCHEMA.name: shown}, {SCHEMA.name: true})


def test_one_release_alone_protects_the_small_count() -> None:
    _, recovered = attack(_ledger())
    assert recovered == []


def test_an_earlier_release_that_showed_the_complement_is_an_attack() -> None:
    ledger = _ledger()
    bounds = cross_release_bounds(ledger, {SCHEMA.name: SCHEMA}, [_earlier(21, 20)])
    assert bounds == {COMPLEMENT: (18, 24)}  # its value then, within the noise
    for cell, (low, high) in bounds.items():
        ledger.bound(cell, low, high)
    _, recovered = attack(ledger)
    assert [r.target.cell for r in recovered] == [SMALL]


def test_a_count_that_changed_since_gets_no_bound_from_its_past() -> None:
    ledger = _ledger(complement_true=20)
    assert cross_release_bounds(ledger, {SCHEMA.name: SCHEMA}, [_earlier(17, 16)]) == {}
