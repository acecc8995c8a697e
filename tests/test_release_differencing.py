"""Red team, round 2: what an agency can do with two of its releases, or two agencies with their files together.

F7. An agency's case mix, one quarter and its revision (or the next quarter, on a closed cohort): the same 14
episodes, all in GIR 1-2 in the first, 11 of them after a re-assessment. The first release shows the episodes
(the noise of 14 may be -3: « 11 »); in the second, « 3 episodes not in GIR 1-2 » is a small count, the GIR 1-2
count is hidden and, when the noise pointed at it, the episodes too (a complement). But the episodes' count did
not change, so its noise did not either: the first release's « 11 » says 11 to 14 now as then, and 11 GIR 1-2
episodes or more leave 1 to 3 outside GIR 1-2. Agencies' releases were attacked alone; now every audience is
attacked with what it was shown before, matched by the cell's noise (``keyed_bounds``), whatever its label.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import polars as pl

from pipelines.publication import agency_tables
from pipelines.publication.agency_tables import PEER_OUTCOMES, REFERRALS, own_figure
from pipelines.publication.audit import attack
from pipelines.publication.cell_key import release_secret
from pipelines.publication.collusion import coalition
from pipelines.publication.errors import PublicationError
from pipelines.publication.ledger import Cell, CellId, Ledger
from pipelines.publication.protector import Protector
from pipelines.publication.release import (
    AudienceRelease,
    EarlierRelease,
    collusion_problems,
    cross_release_bounds,
    keyed_bounds,
    protected,
    shown_boxes,
    with_twins,
)

SECRET = release_secret(b"a test key of at least thirty-two bytes!")
AGENCY = "AG001"


def _case_mix(episodes: int, gir_1_2: int) -> pl.DataFrame:
    return pl.DataFrame([{
        "dimension": "agency", "dimension_value": AGENCY, "cohort": "care_managed", "episodes": episodes,
        "persons": episodes, "episodes_with_plan": episodes, "share_gir_1_2": gir_1_2 / episodes,
        "share_living_alone": 1.0, "days_to_first_contact_median": 5.0, "days_to_plan_median": 20.0,
        "age_mean": 84.0,
    }])  # fmt: skip


def _build(mart: pl.DataFrame, forced: frozenset[CellId], secret: bytes | None = SECRET) -> AudienceRelease:
    protector = Protector(f"agency {AGENCY}", secret, forced)
    tables = {agency_tables.CASE_MIX: agency_tables.case_mix_table(mart, AGENCY, protector)}
    schemas = {agency_tables.CASE_MIX: agency_tables.CASE_MIX_SCHEMA}
    return AudienceRelease(protector.audience, tables, protector.ledger, schemas)


def _quarters() -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """The same episodes in both releases, all in GIR 1-2 in the first, 1 to 10 fewer in GIR 1-2 in the second."""
    for episodes in range(11, 41):
        for gir_1_2 in range(max(MIN_GIR, episodes - 10), episodes):
            yield _case_mix(episodes, episodes), _case_mix(episodes, gir_1_2)


MIN_GIR = 11


def _attacked_with_the_first(first: AudienceRelease, second: AudienceRelease, first_mart: pl.DataFrame) -> list[str]:
    """What the agency recovers from its second release, holding its first: the cells of the same row whose count
    it takes to be unchanged, bounded by the value shown then (the attacker reads its two files, nothing else)."""
    true_then = _build(first_mart, frozenset(), None).tables
    earlier = EarlierRelease("2026-Q1", first.tables, true_then)
    ledger = second.ledger
    for cell, (low, high) in cross_release_bounds(ledger, second.schemas, [earlier]).items():
        ledger.bound(cell, low, high)
    _, recovered = attack(ledger)
    return [r.target.describe() for r in recovered]


def test_an_agency_attacked_alone_leaks_through_its_previous_release() -> None:
    """The attack as agencies' releases were built before: each quarter protected alone."""
    leaks = []
    for first_mart, second_mart in _quarters():
        first, _ = protected(lambda forced: _build(first_mart, forced))  # noqa: B023 (called here)
        second, report = protected(lambda forced: _build(second_mart, forced))  # noqa: B023
        assert report.recovered == []  # each release alone passes its audit
        leaks += _attacked_with_the_first(first, second, first_mart)
    assert leaks, "no pair of quarters leaks: the test no longer shows the attack"
    assert all("episodes and gir_1_2_episodes" in leak for leak in leaks)


def test_an_agency_attacked_with_what_it_was_shown_before_leaks_nothing() -> None:
    """Each pair is published with nothing recoverable from both releases, or refused (the previous release stays
    in service) when every cell around the small count is hidden already and the first release still pins it."""
    published, refused = 0, 0
    for first_mart, second_mart in _quarters():
        first, _ = protected(lambda forced: _build(first_mart, forced))  # noqa: B023 (called here)
        before = (shown_boxes(first.ledger),)
        try:
            second, report = protected(lambda forced: _build(second_mart, forced), earlier_shown=before)  # noqa: B023
        except PublicationError as exc:
            message = str(exc)
            refused += 1
            names_no_value = "no cell left to hide" in message and not re.findall(r"(?<![\w-])\d+(?![\w-])", message)
            assert names_no_value, "a refusal names the cell and its relation, never a value"
            continue
        assert report.recovered == []
        assert _attacked_with_the_first(first, second, first_mart) == []
        published += 1
    assert published > 10 * refused > 0


# --- the same number under two labels ----------------------------------------------------------------------


def _cell(table: str, label: str, true: float, released: float | None, key: str) -> Cell:
    return Cell(CellId(table, (label,), "cases"), "count", true, released, 0.0 if released is None else 3.0,
                noise_key=key)  # fmt: skip


def test_a_hidden_cell_is_bounded_by_any_shown_cell_with_the_same_noise_whatever_its_label() -> None:
    """A peer is « Peer 2 » one quarter and « Peer 3 » the next: its count, unchanged, is the same number."""
    then, now = Ledger(), Ledger()
    then.add(_cell("release_peer_outcomes", "Peer 2", 14, 12, key="peer C cases 14"))
    now.add(_cell("release_peer_outcomes", "Peer 3", 14, None, key="peer C cases 14"))
    now.add(_cell("release_peer_outcomes", "Peer 1", 15, None, key="peer D cases 15"))
    assert keyed_bounds(now, [shown_boxes(then)]) == {CellId("release_peer_outcomes", ("Peer 3",), "cases"): (9, 15)}


def test_hiding_a_cell_hides_every_copy_of_its_number_in_the_release() -> None:
    ledger = Ledger()
    before = _cell("release_outcomes", "before", 20, 21, key="region persons 20")
    after = _cell("release_outcomes", "after", 20, 21, key="region persons 20")
    other = _cell("release_outcomes", "other", 20, 22, key="another cell 20")
    for cell in (before, after, other):
        ledger.add(cell)
    assert with_twins(ledger, {after.id}) == {before.id, after.id}


# --- collusion ---------------------------------------------------------------------------------------------


def _pooled_pair() -> tuple[Ledger, Ledger]:
    """Agency A's file hides a peer's cases (a complement) beside its 3 events; agency B's file shows the same
    cases (the same noise key)."""
    cases = CellId(PEER_OUTCOMES, ("A", "ruptures", "Peer 1"), "cases")
    events = CellId(PEER_OUTCOMES, ("A", "ruptures", "Peer 1"), "events")
    a, b = Ledger(), Ledger()
    a.add(Cell(cases, "count", 14, None, 0.0, noise_key="C ruptures cases 14"))
    a.add(Cell(events, "count", 3, None, 0.0, noise_key="C ruptures events 3"))
    a.relate("ruptures: events among cases", cases, [events])
    shown = CellId(PEER_OUTCOMES, ("B", "ruptures", "Peer 4"), "cases")
    b.add(Cell(shown, "count", 14, 11, 3.0, noise_key="C ruptures cases 14"))
    return a, b


def test_two_files_pooled_are_one_attack_where_one_shows_what_the_other_hides() -> None:
    """Alone, neither file narrows the events; pooled, the cases are 11 to 14 and the events, with at least 11
    cases without one, 1 to 3."""
    a, b = _pooled_pair()
    assert attack(a)[1] == []
    assert attack(b)[1] == []
    _, recovered = attack(coalition({"A": a, "B": b}, own_figure))
    assert [r.target.cell for r in recovered] == [
        CellId(PEER_OUTCOMES, ("same noise", "C ruptures events 3"), "events")
    ]


def test_a_publication_that_colluding_agencies_could_attack_is_refused() -> None:
    a, b = _pooled_pair()
    agencies = {
        name: AudienceRelease(f"agency {name}", {}, ledger, {})
        for name, ledger in (("A", a), ("B", b), ("C", Ledger()))
    }
    problems = collusion_problems(agencies)
    assert problems == [
        "the other agencies together narrow 1 hidden counts of agency C to fewer than 4 values "
        "(release_peer_outcomes.events)"
    ]
    assert collusion_problems({"A": agencies["A"], "C": agencies["C"]}) == []  # A alone was audited alone


def test_a_colluder_knows_its_own_figures_and_recovers_nothing_else_from_them() -> None:
    """Agency A's own referrals: two shown levels and a hidden one, of an implicit total. A knows all three; pooled
    with another file, its own relation is dropped (it knows its remainder), and nothing of A's is a target."""
    a = Ledger()
    total = CellId(REFERRALS, ("A", "care_managed", "all", "all"), "episodes")
    parts = [CellId(REFERRALS, ("A", "care_managed", "referrer", r), "episodes") for r in ("gp", "hospital", "family")]
    a.add(Cell(total, "count", 40, None, 0.0, implicit=True))
    for part, true, shown in zip(parts, (20, 15, 5), (21, 14, None), strict=True):
        a.add(Cell(part, "count", true, shown, 0.0 if shown is None else 3.0, noise_key=f"A {part.row[-1]} {true}"))
    a.relate("episodes by referrer", total, parts)
    pooled = coalition({"A": a, "B": Ledger()}, own_figure)
    assert pooled.relations == []
    assert all(c.released == c.true and c.noise == 0 for c in pooled)
    assert attack(pooled) == (0, [])
