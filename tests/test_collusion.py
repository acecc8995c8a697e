"""The coalitions of all agencies but one, built from one pool of every file (``collusion.Pool``), against the first
implementation that pooled the other files again for each left-out agency (``tests/collusion_oracle.py``).

The federations here are random and small: each agency's file lists some others as peers (the same noise key,
hence the same released value, in every file that lists a peer; hidden in some files and shown in others, as
complements fall), its own figures (which it knows exactly, with relations among them only), bounds a verdict
gives, and peers that have no file of their own (nobody knows them exactly). The attack must find the same hidden
counts narrowed, with the same widths, from either ledger."""

from __future__ import annotations

import random

import pytest

from pipelines.publication.agency_tables import BENCHMARK, PEER_OUTCOMES, own_figure
from pipelines.publication.audit import Recovery, attack
from pipelines.publication.collusion import Pool
from pipelines.publication.errors import PublicationError
from pipelines.publication.ledger import Cell, CellId, Ledger
from pipelines.publication.rules import MAX_NOISE, MIN_CELL
from tests.collusion_oracle import pooled_ledger

FAMILIES = ("ruptures", "carer")


def _count(rng: random.Random, small_share: float) -> int:
    return rng.randint(1, MIN_CELL - 1) if rng.random() < small_share else rng.randint(MIN_CELL, 40)


def _released(rng: random.Random, true: int) -> int | None:
    """Zero shown exactly, 1 to 10 hidden, the rest perturbed (never under the threshold)."""
    if true == 0 or true < MIN_CELL:
        return None if true else 0
    return max(MIN_CELL, true + rng.randint(-MAX_NOISE, MAX_NOISE))


def _federation(seed: int, agencies: int = 6, orphans: int = 2) -> dict[str, Ledger]:
    """``agencies`` files; peers ``O0``.. have no file of their own."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not a secret
    names = [f"A{i}" for i in range(agencies)]
    subjects = [*names, *(f"O{i}" for i in range(orphans))]
    truth = {}
    for subject in subjects:
        for family in FAMILIES:
            cases = _count(rng, 0.2)
            events = rng.randint(1, min(cases, MIN_CELL - 1)) if rng.random() < 0.6 else rng.randint(0, cases)
            # One released value per noise key, whichever file shows it.
            shown = {column: _released(rng, true) for column, true in (("cases", cases), ("events", events))}
            truth[(subject, family)] = {"cases": (cases, shown["cases"]), "events": (events, shown["events"])}
    ledgers = {}
    for viewer in names:
        ledger = Ledger()
        listed = [viewer, *(s for s in subjects if s != viewer and rng.random() < 0.7)]
        for subject in listed:
            for family in FAMILIES:
                label = "own" if subject == viewer else f"Peer {subject}"
                cells = {}
                for column, (true, released) in truth[(subject, family)].items():
                    where = CellId(PEER_OUTCOMES, (viewer, family, label), column)
                    hide = released is not None and rng.random() < 0.3  # a complement in this file only
                    here = None if hide else released
                    noise = 0.0 if not here else float(MAX_NOISE)
                    key = f"{subject} {family} {column} {true}"
                    ledger.add(Cell(where, "count", true, here, noise, noise_key=key))
                    cells[column] = where
                ledger.relate(f"{family}: events among cases", cells["cases"], [cells["events"]])
                if rng.random() < 0.15:
                    events = truth[(subject, family)]["events"][0]
                    ledger.bound(cells["events"], max(0, events - rng.randint(0, 2)), events + rng.randint(0, 2))
        # Own figures with an implicit total: the colluders' exact knowledge, whose relations tell them nothing.
        total = CellId(BENCHMARK, (viewer,), "episodes")
        ledger.add(Cell(total, "count", 50, None, 0.0, implicit=True))
        parts = [CellId(BENCHMARK, (viewer,), column) for column in ("observed", "expected")]
        ledger.add(Cell(parts[0], "count", 30, 31, 3.0, noise_key=f"{viewer} observed 30"))
        ledger.add(Cell(parts[1], "count", 4, None, 0.0, noise_key=f"{viewer} expected 4"))
        ledger.relate("benchmark", total, parts)
        ledgers[viewer] = ledger
    return ledgers


def _found(recovered: list[Recovery]) -> set[tuple[object, ...]]:
    return {(r.target.cell, r.target.relation, r.width) for r in recovered}


def test_each_coalition_recovers_what_the_files_pooled_again_recover() -> None:
    recovered_somewhere = clean_somewhere = 0
    for seed in range(40):
        ledgers = _federation(seed)
        pool = Pool(ledgers, own_figure)
        for left_out in ledgers:
            others = {a: ledger for a, ledger in ledgers.items() if a != left_out}
            _, expected = attack(pooled_ledger(others, own_figure))
            _, found = attack(pool.without(left_out))
            assert _found(found) == _found(expected), (seed, left_out)
            recovered_somewhere += bool(expected)
            clean_somewhere += not expected
    # The comparison has both outcomes to tell apart.
    assert recovered_somewhere > 0
    assert clean_somewhere > 0


def test_the_whole_pool_is_every_file_pooled() -> None:
    for seed in range(10):
        ledgers = _federation(seed)
        expected = attack(pooled_ledger(ledgers, own_figure))[1]
        assert _found(attack(Pool(ledgers, own_figure).everyone())[1]) == _found(expected), seed


def test_a_coalition_holds_only_what_the_left_out_agency_and_nobody_know() -> None:
    """Why the check scales: the ledger attacked for one left-out agency holds its cells as the others' files list
    them (and the cells of peers with no file), whatever the number of agencies; the colluders' own figures stay
    out of it. Pooled again from the other files, the ledger grew with the square of the agencies."""
    sizes = {}
    for agencies in (8, 32):
        ledgers = _federation(7, agencies=agencies, orphans=0)
        coalition = Pool(ledgers, own_figure).without("A0")
        subjects = {c.id.row[1].split()[0] for c in coalition}
        assert subjects <= {"A0"}, subjects
        sizes[agencies] = len(coalition.cells), len(pooled_ledger(
            {a: ledger for a, ledger in ledgers.items() if a != "A0"}, own_figure
        ).cells)  # fmt: skip
    assert sizes[32][0] == sizes[8][0] == 2 * len(FAMILIES)
    assert sizes[32][1] > 3 * sizes[8][1]


def test_two_files_knowing_one_noise_key_with_different_values_are_refused() -> None:
    """A noise key is one count in every file. Were two colluders' own figures under one key to differ, the pool
    would keep the first and lose what the second tells (the red team's case: with 35, a third file's total of
    40 = 35 + hidden gives the hidden 5 away); the publication refuses such files instead of attacking them."""

    def owner(agency: str, true: int) -> Ledger:
        ledger = Ledger()
        ledger.add(Cell(CellId(BENCHMARK, (agency,), "observed"), "count", true, true, 0.0, noise_key="shared"))
        return ledger

    consistent = {"A": owner("A", 30), "B": owner("B", 30)}
    assert attack(Pool(consistent, own_figure).without("A")) == (0, [])  # one truth: accepted, nothing to find
    with pytest.raises(PublicationError, match="different values") as refused:
        Pool({"A": owner("A", 30), "B": owner("B", 35)}, own_figure)
    assert "30" not in str(refused.value)
    assert "35" not in str(refused.value)
