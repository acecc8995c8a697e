"""Protecting values one cell at a time, and recording each in the audience's ledger.

One ``Protector`` per audience (the funders, one agency). With no secret it protects nothing
and records nothing: that is the analysts' release, the same tables with their true values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from pipelines.publication.cell_key import magnitude_keyed_value, protect_count, protect_magnitude, same_noise_as
from pipelines.publication.ledger import Cell, CellId, Ledger
from pipelines.publication.rules import MAGNITUDE_NOISE, MAX_NOISE, MIN_CELL


def is_small(value: float | None) -> bool:
    """A count of 1 to 10: never released."""
    return value is not None and 0 < value < MIN_CELL


@dataclass
class Protector:
    audience: str
    secret: bytes | None
    forced: frozenset[CellId] = frozenset()
    """Cells the auditor asked to hide as well (complementary suppression solved on everything the
    audience sees)."""
    ledger: Ledger = field(default_factory=Ledger)

    @property
    def protects(self) -> bool:
        return self.secret is not None

    def count(
        self, where: CellId, value: float | None, identity: Sequence[str], hide: bool = False, cost: float = 1.0
    ) -> int | None:
        """A released count: hidden when ``hide`` (its row is), when 1 to 10, or when the auditor asked."""
        true = 0 if value is None else round(float(value))
        if not self.protects:
            return None if value is None else true
        released = None if hide or where in self.forced else protect_count(self.secret or b"", identity, true)
        exact = released is None or released == 0
        noise = 0.0 if exact else float(MAX_NOISE)
        self.ledger.add(Cell(where, "count", true, released, noise, cost=cost, noise_key=same_noise_as(identity, true)))
        return released

    def magnitude(
        self, where: CellId, value: float | None, identity: Sequence[str], hide: bool = False, digits: int = 1
    ) -> float | None:
        """A released sum (person-years, hours, expected events): hidden with its row, else rounded and perturbed."""
        if value is None:
            return None
        if not self.protects:
            return float(value)
        released = (
            None if hide or where in self.forced else protect_magnitude(self.secret or b"", identity, value, digits)
        )
        noise = MAGNITUDE_NOISE + 0.5 * 10.0**-digits
        key = same_noise_as(identity, magnitude_keyed_value(value, digits))
        self.ledger.add(Cell(where, "magnitude", float(value), released, 0.0 if released is None else noise,
                             noise_key=key))  # fmt: skip
        return released

    def never_rising(self, chain: Sequence[CellId]) -> dict[CellId, int | None]:
        """Released counts of a chain whose true counts can only fall (attrition steps), each lowered to the least
        released before it: independent noise made a step rise after an exclusion. A true count c at or below
        an earlier step's t, released as r >= t - 3 >= c - 3, stays within its noise range (and at least 11)."""
        out: dict[CellId, int | None] = {}
        least: float | None = None
        for where in chain:
            cell = self.ledger.cells.get(where) if self.protects else None
            if cell is None:
                continue
            if cell.released is not None and least is not None and cell.released > least:
                self.ledger.cells[where] = replace(cell, released=least)
            released = self.ledger.cells[where].released
            out[where] = None if released is None else int(released)
            if released is not None:
                least = released
        return out

    def implicit(self, where: CellId, value: float) -> CellId:
        """A count no table shows but two relations share (an agency's episodes, split by referrer and by payer)."""
        if self.protects:
            self.ledger.add(Cell(where, "count", round(value), None, 0.0, implicit=True))
        return where

    def relate(self, kind: str, total: CellId, parts: Iterable[CellId], distinct: bool = False) -> None:
        if self.protects:
            self.ledger.relate(kind, total, parts, distinct)

    def bound(self, where: CellId, low: float, high: float) -> None:
        """Tell the auditor what else the release says about a count (a check met or not at a threshold)."""
        if self.protects and where in self.ledger.cells:
            self.ledger.bound(where, low, high)
