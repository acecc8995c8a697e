"""The auditor attacks a release together with the earlier ones an audience was shown.

A hand-made case: a total of 25 released exactly, a part of 5 hidden, the other part of 20 hidden as its
complement, and the release says the part is at least 5 (a study's check "at least 5 episodes: met").
Alone, the release leaves the part 5 to 10. But an earlier release showed the complement (20, the same
count, so the same noise under the cell-key method: 21, meaning 18 to 24): with it, the attacker narrows
the part to 5 to 7, fewer than the four values a hidden count must keep. ``cross_release_bounds`` gives
the auditor exactly that knowledge, only for counts that did not change."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from pipelines import warehouse
from pipelines.operations.releases import MANIFEST, earlier_funder_releases, earlier_shown_cells, serving_of
from pipelines.publication.audit import attack
from pipelines.publication.federation_tables import OUTCOMES
from pipelines.publication.ledger import Cell, CellId, Ledger
from pipelines.publication.release import (
    FUNDER_SCHEMAS,
    SHOWN_CELLS,
    EarlierRelease,
    cross_release_bounds,
    funder_path,
)
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


def test_the_kept_releases_are_read_as_the_funders_and_the_analysts_were_shown_them(tmp_path: Path) -> None:
    """``earlier_funder_releases`` reads, of each kept release, the funders' file and, of the analysts' copy, the
    funders' tables only (``read_tables`` with ``include``, through one connection): the same tables as every
    table read and filtered; ``earlier_shown_cells`` reads each release's shown cells, a release without them
    adding nothing."""
    root = tmp_path / "releases"
    outcomes = pl.DataFrame({"area": ["all", "small"], "persons": [30, None]})
    shown_cells = pl.DataFrame(
        {"audience": ["funders"], "noise_key": ["k1"], "low": [18.0], "high": [24.0]},
        schema={"audience": pl.String, "noise_key": pl.String, "low": pl.Float64, "high": pl.Float64},
    )
    for number, name in enumerate(("2026-Q1", "2026-Q2")):
        serving = serving_of(root / name)
        analysts = {OUTCOMES: outcomes.with_columns(persons=pl.lit(30 + number)), "mart_caseload": outcomes}
        if number:
            analysts[SHOWN_CELLS] = shown_cells
        warehouse.swap_in(warehouse.write_snapshot(serving, analysts, {"release": name}), serving)
        funders = funder_path(serving)
        warehouse.swap_in(warehouse.write_snapshot(funders, {OUTCOMES: outcomes}, {"release": name}), funders)
        manifest = {"name": name, "published_at": f"2026-0{number + 4}-01T00:00:00+00:00"}
        (root / name / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    earlier = earlier_funder_releases(root, "parcours_serving.duckdb")
    assert [e.name for e in earlier] == ["2026-Q1", "2026-Q2"]
    for release in earlier:
        serving = serving_of(root / release.name)
        every = warehouse.read_tables(serving)
        assert list(release.true) == [t for t in every if t in FUNDER_SCHEMAS] == [OUTCOMES]
        assert all(release.true[t].equals(every[t]) and release.true[t].schema == every[t].schema for t in release.true)
        assert list(release.shown) == [OUTCOMES]
        assert release.shown[OUTCOMES].equals(outcomes)
    assert earlier_shown_cells(root, "parcours_serving.duckdb") == {"funders": ({"k1": (18.0, 24.0)},)}
