"""The ledger of a release: every protected cell, its true and released values, and how cells relate.

The release builders write it as they protect tables; the auditor reads it to know what the
attacker may combine (breakdowns that add up to totals, subgroups to their study, histogram
bins to their arm, attrition steps to each other), and reads the released values back from the
files that are about to be swapped in. True values never leave the publication step.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

CellKind = Literal["count", "magnitude"]


@dataclass(frozen=True)
class CellId:
    """Where a cell is: its table, its row's labels (never case values) and its column.

    ``column`` may be a path into a JSON column (``funder_figures.treated_severe_at_baseline``).
    """

    table: str
    row: tuple[str, ...]
    column: str

    def describe(self) -> str:
        return f"{self.table}.{self.column} ({', '.join(self.row)})"


@dataclass
class Cell:
    id: CellId
    kind: CellKind
    true: float
    released: float | None
    """None when hidden."""
    noise: float
    """The most the released value may differ from the true one (0 when released exactly)."""
    implicit: bool = False
    """A cell no table shows (a total that two breakdowns share): the attacker has only its relations."""
    cost: float = 1.0
    """What hiding it would cost, when the auditor must hide one more cell (régions and totals cost more)."""
    noise_key: str = ""
    """Shared by every cell, of any table or release, whose noise is the same draw (same identity, same count:
    ``cell_key.same_noise_as``); empty for a cell with no noise of its own (an implicit total)."""


@dataclass(frozen=True)
class Relation:
    """``total`` = sum of ``parts`` + what is in the total and in no listed part (the remainder, ≥ 0).

    ``kind`` names the relation in audit messages ("breakdown", "subgroups", "histogram bins", …).
    For counts of distinct persons (``distinct``) a person may be in several parts: the total is at
    most the sum of the parts, and each part at most the total.
    """

    kind: str
    total: CellId
    parts: tuple[CellId, ...]
    distinct: bool = False


@dataclass
class Ledger:
    cells: dict[CellId, Cell] = field(default_factory=dict)
    relations: list[Relation] = field(default_factory=list)
    known: dict[CellId, tuple[float, float]] = field(default_factory=dict)
    """What else the release says about a cell's true count (a verdict's "at least 5 episodes: met")."""

    def bound(self, cell: CellId, low: float, high: float) -> None:
        before = self.known.get(cell, (0.0, float("inf")))
        self.known[cell] = (max(before[0], low), min(before[1], high))

    def add(self, cell: Cell) -> None:
        if cell.id in self.cells:
            raise ValueError(f"cell {cell.id.describe()} recorded twice")
        self.cells[cell.id] = cell

    def relate(self, kind: str, total: CellId, parts: Iterable[CellId], distinct: bool = False) -> None:
        members = tuple(parts)
        if members:
            self.relations.append(Relation(kind, total, members, distinct))

    def extend(self, other: Ledger) -> None:
        for cell in other.cells.values():
            self.add(cell)
        self.relations.extend(other.relations)
        for where, (low, high) in other.known.items():
            self.bound(where, low, high)

    def __iter__(self) -> Iterator[Cell]:
        return iter(self.cells.values())

    def hidden(self) -> list[Cell]:
        return [c for c in self.cells.values() if c.released is None and not c.implicit]

    def tables(self) -> set[str]:
        return {c.table for c in self.cells}
