"""Audiences pooling their files: what a coalition knows, as one ledger for ``audit.attack``.

A cell is one unknown wherever it appears: its noise key (``Cell.noise_key``) names it in every file (a peer's
admissions are the same number in every agency's file and in its own), so what one file hides another may show.
Each colluder knows its own figures exactly (``knows_exactly``: the cells of its own tables, hidden ones and
implicit totals included); the relations of every file hold, except those made of exactly known figures only,
which tell the colluders nothing they did not know. What is left to recover is what no colluder knows.

The publication attacks every coalition of all agencies but one. Pooling the files again for each (what this
module did first) costs the number of agencies times the size of every file together: at 240 agencies, each
file listing the 239 others as peers, it did not finish in 22 minutes (docs/benchmarks-notes.md). ``Pool``
reads the files once and indexes every cell by name and by who knows it exactly; the coalition without one
agency is then built from what that coalition does not know (the cells only the left-out agency, or nobody,
knows exactly) and the relations that touch it: the same attack, from the part of the pooled ledger that can
hold a target. ``tests/test_collusion.py`` checks it against the first implementation as an oracle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from pipelines.publication.errors import PublicationError
from pipelines.publication.ledger import Cell, CellId, Ledger, Relation


@dataclass(frozen=True)
class _Shown:
    """One file's copy of a pooled cell, as that file records it (renamed only when pooled)."""

    audience: str
    cell: Cell
    exact: bool


@dataclass(frozen=True)
class _Related:
    """One file's relation, its members named as in the pool."""

    audience: str
    relation: Relation


class Pool:
    """Every audience's file read once; ``without(a)`` is the ledger of all the others pooled, ``everyone()`` of
    all of them."""

    def __init__(self, ledgers: Mapping[str, Ledger], knows_exactly: Callable[[CellId], bool]) -> None:
        # One name per noise key, whichever table shows it (a peer's months are its delivery table's): the first of
        # its tables and columns, for messages, and the key.
        shown_in: dict[str, tuple[str, str]] = {}
        for ledger in ledgers.values():
            for cell in ledger:
                if cell.noise_key:
                    here = (cell.id.table, cell.id.column)
                    shown_in[cell.noise_key] = min(shown_in.get(cell.noise_key, here), here)
        self._copies: dict[CellId, list[_Shown]] = {}
        self._owners: dict[CellId, set[str]] = {}
        self._bounds: dict[CellId, list[tuple[str, float, float]]] = {}
        self._relations: dict[CellId, list[int]] = {}
        self._related: list[_Related] = []
        for audience, ledger in ledgers.items():
            names: dict[CellId, CellId] = {}
            for cell in ledger:
                if cell.noise_key:
                    table, column = shown_in[cell.noise_key]
                    name = CellId(table, ("same noise", cell.noise_key), column)
                else:
                    name = CellId(cell.id.table, (audience, *cell.id.row), cell.id.column)
                names[cell.id] = name
                exact = knows_exactly(cell.id)
                self._copies.setdefault(name, []).append(_Shown(audience, cell, exact))
                owners = self._owners.setdefault(name, set())
                if exact:
                    owners.add(audience)
                    self._check_one_truth(name, cell)
            for where, (low, high) in ledger.known.items():
                self._bounds.setdefault(names[where], []).append((audience, low, high))
            for relation in ledger.relations:
                named = Relation(
                    relation.kind, names[relation.total], tuple(names[p] for p in relation.parts), relation.distinct
                )
                for member in {named.total, *named.parts}:
                    self._relations.setdefault(member, []).append(len(self._related))
                self._related.append(_Related(audience, named))
        self._unknown_to_all_but: dict[str | None, list[CellId]] = {}
        for name, owners in self._owners.items():
            if len(owners) <= 1:
                self._unknown_to_all_but.setdefault(next(iter(owners), None), []).append(name)

    def _check_one_truth(self, name: CellId, cell: Cell) -> None:
        """A noise key is one count wherever it is shown: two files that know it exactly with different values
        are inconsistent, and the coalition's copy (the first exact one) would hide what the other tells. Fail
        closed, naming the table and column, never the values."""
        first = next(c.cell for c in self._copies[name] if c.exact)
        if first.true != cell.true and not (first.true != first.true and cell.true != cell.true):  # NaN is NaN
            raise PublicationError(
                f"two agencies' files know {name.table}.{name.column} exactly with different values: "
                "the release tables are inconsistent"
            )

    def without(self, left_out: str) -> Ledger:
        """What every audience but ``left_out`` knows together."""
        return self._coalition(lambda audience: audience != left_out, left_out)

    def everyone(self) -> Ledger:
        return self._coalition(lambda audience: True, None)

    def _coalition(self, member: Callable[[str], bool], left_out: str | None) -> Ledger:
        # What the coalition does not know exactly: the cells nobody knows, and those only the left-out knows.
        unknown = list(self._unknown_to_all_but.get(None, ()))
        if left_out is not None:
            unknown += self._unknown_to_all_but.get(left_out, ())
        pooled = Ledger()
        for name in unknown:
            if any(member(c.audience) for c in self._copies[name]):
                self._pool_cell(pooled, name, member)
        seen: set[tuple[str, CellId, tuple[CellId, ...], bool]] = set()
        for index in sorted({i for name in unknown for i in self._relations.get(name, ())}):
            related = self._related[index]
            relation = related.relation
            # A relation copied in several files (a peer's events among its cases) is one constraint.
            key = (relation.kind, relation.total, relation.parts, relation.distinct)
            if not member(related.audience) or key in seen:
                continue
            seen.add(key)
            for name in (relation.total, *relation.parts):
                if name not in pooled.cells:
                    self._pool_cell(pooled, name, member)
            pooled.relations.append(relation)
        for name in pooled.cells:
            for audience, low, high in self._bounds.get(name, ()):
                if member(audience):
                    pooled.bound(name, low, high)
        return pooled

    def _pool_cell(self, pooled: Ledger, name: CellId, member: Callable[[str], bool]) -> None:
        """The coalition's copy of a cell: exact where a colluder owns it, else the first file that shows it (or
        the first that lists it, hidden)."""
        copies = [c for c in self._copies[name] if member(c.audience)]
        owned = next((c.cell for c in copies if c.exact), None)
        if owned is not None:
            pooled.cells[name] = replace(owned, id=name, released=owned.true, noise=0.0, implicit=False)
            return
        shown = next((c.cell for c in copies if c.cell.released is not None), copies[0].cell)
        pooled.cells[name] = replace(shown, id=name)


def coalition(ledgers: Mapping[str, Ledger], knows_exactly: Callable[[CellId], bool]) -> Ledger:
    """What the audiences of ``ledgers`` know together (see the module's docstring)."""
    return Pool(ledgers, knows_exactly).everyone()
