"""Rows grouped into cells of identical treatment and covariates, so that models are fitted per cell.

The propensity and outcome models depend on a row only through its cell, and a bootstrap
resample only changes how many times each row is drawn. Fitting on cell totals (rows drawn,
outcome and exposure summed) gives exactly the row-level fit, on tens of thousands of cells
instead of a million rows: this is what makes a thousand refits affordable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl


@dataclass(frozen=True)
class Cells:
    t: np.ndarray
    """Treatment of each cell."""
    x: np.ndarray
    """Covariates of each cell."""
    index: np.ndarray
    """The cell of each row."""

    @property
    def size(self) -> int:
        return int(self.t.shape[0])

    def totals(
        self, rows: np.ndarray | None, *values: np.ndarray, weights: np.ndarray | None = None
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Rows drawn per cell and each of ``values`` summed per cell, over ``rows`` (all rows when None,
        repeated indices counted as often as drawn; each counted ``weights`` times when given)."""
        index = self.index if rows is None else self.index[rows]
        counts = np.bincount(index, weights, minlength=self.size).astype(float)
        sums = []
        for value in values:
            taken = value if rows is None else value[rows]
            sums.append(np.bincount(index, taken if weights is None else taken * weights, minlength=self.size))
        return counts, sums

    def totals_many(
        self, draws: Sequence[tuple[np.ndarray, np.ndarray | None]], *values: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """``totals`` of several resamples (``(rows, weights)`` each) on the cells any of them drew: those
        cells' ids, rows drawn per resample and cell (resamples x cells), and each of ``values`` likewise."""
        drawn = np.zeros(self.size, dtype=bool)
        for rows, _ in draws:
            drawn[self.index[rows]] = True
        ids = np.flatnonzero(drawn)
        local = np.full(self.size, -1, dtype=np.int64)
        local[ids] = np.arange(ids.shape[0])
        indices = [local[self.index[rows]] for rows, _ in draws]
        counts = np.stack(
            [
                np.bincount(index, weights, minlength=ids.shape[0]).astype(float)
                for index, (_, weights) in zip(indices, draws, strict=True)
            ]
        )
        sums = []
        for value in values:
            taken = [value[rows] if weights is None else value[rows] * weights for rows, weights in draws]
            sums.append(
                np.stack([np.bincount(i, v, minlength=ids.shape[0]) for i, v in zip(indices, taken, strict=True)])
            )
        return ids, counts, sums


def _grouping_key(values: np.ndarray) -> pl.Series:
    """A column as the narrowest integer type that holds every value exactly (covariates are mostly flags and
    counts), else as it is: the same groups (two values are equal as integers exactly when they are equal as
    floats), for a fraction of the memory: grouping a million rows on 29 float columns held 600 MB beside the
    study (``docs/benchmarks-notes.md``)."""
    if values.dtype.kind == "f" and values.size:
        low, high = values.min(), values.max()  # NaN fails both comparisons below: it stays a float
        for dtype in (np.int8, np.int16, np.int32):
            limits = np.iinfo(dtype)
            if limits.min <= low and high <= limits.max:
                narrow = values.astype(dtype)
                if np.array_equal(narrow, values):
                    return pl.Series(narrow)
                break
    return pl.Series(values)


def group_cells(
    t: np.ndarray, x: np.ndarray, leading: np.ndarray | None = None, trailing: np.ndarray | None = None
) -> Cells:
    """Cells of identical (t, x), in a stable order. ``leading``: a column grouped on before x's (cross-fitting's
    folds), the cells and their ``x`` those of ``np.column_stack([leading, x])`` without that copy of the matrix
    (200 MB at a million rows of 26 covariates, beside the study's own). ``trailing``: likewise a column after x's
    (a difference-in-differences design's baseline rate), as ``np.column_stack([x, trailing])`` without that copy
    (eleven designs, 6.7 s of the calling thread at a million rows)."""
    common = x.dtype if trailing is None else np.result_type(x, trailing)
    given = [] if leading is None else [leading.astype(np.result_type(leading, common))]
    given += [x[:, i].astype(common, copy=False) for i in range(x.shape[1])]
    given += [] if trailing is None else [trailing.astype(common)]
    columns = {"t": pl.Series(t), **{f"x{i}": _grouping_key(column) for i, column in enumerate(given)}}
    # Polars groups a million rows in milliseconds; numpy's unique(axis=0) sorts whole rows.
    frame = pl.DataFrame(columns).with_row_index("_row")
    keys = list(columns)
    cells = frame.group_by(keys, maintain_order=True).agg(pl.col("_row")).with_row_index("_cell")
    index = np.empty(t.shape[0], dtype=np.int64)
    exploded = cells.select("_cell", "_row").explode("_row")
    index[exploded["_row"].to_numpy()] = exploded["_cell"].to_numpy()
    return Cells(
        t=cells["t"].to_numpy().astype(t.dtype),
        x=cells.select(keys[1:]).to_numpy().astype(float).reshape(-1, len(given)),
        index=index,
    )
