"""The first implementation of ``collusion.coalition``, kept as the oracle of ``tests/test_collusion.py``: it pools
every file of a coalition again for each coalition (quadratic in the agencies, but plainly what the docstring
says), from ``pipelines/publication/audit.py`` as of 35b323b."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from pipelines.publication.ledger import CellId, Ledger


def pooled_ledger(ledgers: Mapping[str, Ledger], knows_exactly: Callable[[CellId], bool]) -> Ledger:
    """What several audiences pooling their files know, as one ledger for ``attack``.

    A cell is one unknown wherever it appears: its noise key (``Cell.noise_key``) names it in every file (a peer's
    admissions are the same number in every agency's file and in its own), so what one file hides another may
    show. Each colluder knows its own figures exactly (``knows_exactly``: the cells of its own tables, hidden ones
    and implicit totals included); the relations of every file hold, except those made of its own figures only,
    which tell the colluders nothing they did not know. What is left to recover is what no colluder knows."""
    pooled = Ledger()
    names: dict[tuple[str, CellId], CellId] = {}
    exact: set[CellId] = set()
    # One name per noise key, whichever table shows it (a peer's months are its delivery table's): the first of
    # its tables and columns, for messages, and the key.
    shown_in: dict[str, tuple[str, str]] = {}
    for ledger in ledgers.values():
        for cell in ledger:
            if cell.noise_key:
                here = (cell.id.table, cell.id.column)
                shown_in[cell.noise_key] = min(shown_in.get(cell.noise_key, here), here)
    for audience, ledger in ledgers.items():
        for cell in ledger:
            if cell.noise_key:
                table, column = shown_in[cell.noise_key]
                name = CellId(table, ("same noise", cell.noise_key), column)
            else:
                name = CellId(cell.id.table, (audience, *cell.id.row), cell.id.column)
            names[(audience, cell.id)] = name
            mine = knows_exactly(cell.id)
            pooled_cell = replace(cell, id=name)
            if mine:
                pooled_cell = replace(pooled_cell, released=cell.true, noise=0.0, implicit=False)
                exact.add(name)
            before = pooled.cells.get(name)
            if before is None or mine or (before.released is None and cell.released is not None):
                pooled.cells[name] = pooled_cell
        for where, (low, high) in ledger.known.items():
            pooled.bound(names[(audience, where)], low, high)
    for audience, ledger in ledgers.items():
        for relation in ledger.relations:
            members = [names[(audience, c)] for c in (relation.total, *relation.parts)]
            if all(m in exact for m in members):
                continue
            pooled.relate(relation.kind, members[0], members[1:], relation.distinct)
    return pooled
