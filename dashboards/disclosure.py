"""Disclosure control for anything shown outside the federation's analysts.

Parcours follows the French secure data centres' rule: no cell describing fewer than 11
persons or events is released. This module holds the pure rule; the data-access layer
applies it before any page sees a table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

MIN_CELL = 11
SUPPRESSED_FLAG = "suppressed"


def suppress_small_cells(
    frame: pl.DataFrame,
    count_columns: Sequence[str],
    derived: Mapping[str, Sequence[str]] | None = None,
    threshold: int = MIN_CELL,
) -> pl.DataFrame:
    """Blank every count below ``threshold`` and every value derived from one.

    ``derived`` maps a column (a rate, an interval bound) to the counts it is computed from:
    it is blanked when any of them is small. A zero count is left visible: it describes no
    one. A ``suppressed`` column says which rows lost a value.
    """
    derived = derived or {}
    small = {c: pl.col(c).is_between(1, threshold - 1) for c in count_columns}
    any_small = pl.any_horizontal(*small.values()) if small else pl.lit(False)
    blanked = [pl.when(small[c]).then(None).otherwise(pl.col(c)).alias(c) for c in count_columns]
    for column, sources in derived.items():
        condition = pl.any_horizontal(*(small[s] for s in sources))
        blanked.append(pl.when(condition).then(None).otherwise(pl.col(column)).alias(column))
    return frame.with_columns(any_small.alias(SUPPRESSED_FLAG)).with_columns(blanked)


def protect_breakdown(
    frame: pl.DataFrame,
    count_columns: Sequence[str],
    group_columns: Sequence[str],
    blank_columns: Sequence[str] = (),
    threshold: int = MIN_CELL,
) -> pl.DataFrame:
    """Primary and complementary suppression of a table whose rows add up to totals by group.

    A row is hidden when any of its ``count_columns`` is between 1 and ``threshold - 1``
    (primary). Within each group (the rows that add up to one total, e.g. the levels of one
    breakdown for one cohort and period), hiding continues with the smallest visible rows
    until either nothing is hidden or, for every count column, at least two rows are hidden
    and their hidden total is 0 or at least ``threshold``: subtracting the visible rows from
    the total then recovers neither one row nor a small sum. A hidden row loses every count
    and every column in ``blank_columns`` (the rates, intervals and shares built on them).
    """
    if frame.is_empty():
        return frame.with_columns(pl.lit(False).alias(SUPPRESSED_FLAG))
    counts = frame.select(count_columns).fill_null(0).to_numpy().astype(np.int64)
    hidden: np.ndarray = np.asarray(((counts >= 1) & (counts < threshold)).any(axis=1))
    if group_columns:
        keys = frame.select(group_columns).with_row_index("_row").group_by(group_columns).agg(pl.col("_row"))
        groups = [np.asarray(rows, dtype=np.int64) for rows in keys["_row"].to_list()]
    else:
        groups = [np.arange(frame.height)]
    for rows in groups:
        while True:
            group_hidden = rows[hidden[rows]]
            if group_hidden.size == 0:
                break
            sums = counts[group_hidden].sum(axis=0)
            safe = group_hidden.size >= 2 and bool(((sums == 0) | (sums >= threshold)).all())
            if safe:
                break
            visible = rows[~hidden[rows]]
            if visible.size == 0:
                break  # the whole group is hidden
            nonzero = visible[counts[visible].sum(axis=1) > 0]
            candidates = nonzero if nonzero.size else visible
            hidden[candidates[np.argmin(counts[candidates, 0])]] = True
    return blank_rows(frame, pl.Series(SUPPRESSED_FLAG, hidden), [*count_columns, *blank_columns])


def blank_rows(frame: pl.DataFrame, condition: pl.Expr | pl.Series, columns: Sequence[str]) -> pl.DataFrame:
    """Blank ``columns`` in the rows where ``condition`` holds, and flag those rows in ``suppressed``."""
    flagged = frame.with_columns(condition.alias(SUPPRESSED_FLAG))
    hidden = pl.col(SUPPRESSED_FLAG)
    return flagged.with_columns(pl.when(hidden).then(None).otherwise(pl.col(c)).alias(c) for c in columns)


MIN_PEERS = 3
MAX_PEER_SHARE = 0.85


def peer_group_problem(own_agency: str, sizes: Mapping[str, int]) -> str | None:
    """Why the peers of ``own_agency`` may not be shown, or None when they may.

    A peer group needs at least ``MIN_PEERS`` other agencies, none of them more than
    ``MAX_PEER_SHARE`` of the group's size: otherwise a peer "average" is one agency's figure.
    """
    peers = {agency: n for agency, n in sizes.items() if agency != own_agency}
    if len(peers) < MIN_PEERS:
        return f"fewer than {MIN_PEERS} other agencies to compare with"
    total = sum(peers.values())
    if total and max(peers.values()) > MAX_PEER_SHARE * total:
        return f"one agency makes up more than {MAX_PEER_SHARE:.0%} of the peer group"
    return None
