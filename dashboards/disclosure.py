"""Disclosure control for anything shown outside the federation's analysts.

Parcours follows the French secure data centres' rule: no cell describing fewer than 11
persons or events is released. This module holds the pure rule; the data-access layer
applies it before any page sees a table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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
