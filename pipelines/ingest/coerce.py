"""Expressions that turn a column as read into the contract's type.

A value that cannot be converted becomes null; ``pipelines.ingest.validate`` compares the
typed column with the raw one to quarantine those rows.
"""

from __future__ import annotations

import polars as pl

from pipelines.contract import ContractField

TRUE_WORDS = ("true", "1", "oui", "yes", "vrai", "o", "y", "t")
FALSE_WORDS = ("false", "0", "non", "no", "faux", "n", "f")
EXCEL_EPOCH_OFFSET = 25569
"""Days between Excel's day 0 (1899-12-30) and 1970-01-01."""


def _clean_text(expr: pl.Expr) -> pl.Expr:
    stripped = expr.cast(pl.String).str.strip_chars()
    return pl.when(stripped == "").then(None).otherwise(stripped)


def _number_text(expr: pl.Expr, decimal_comma: bool) -> pl.Expr:
    text = _clean_text(expr).str.replace_all(r"[\s\u00a0\u202f]", "")
    if decimal_comma:
        return text.str.replace_all(r"\.", "").str.replace(",", ".", literal=True)
    return text.str.replace_all(",", "", literal=True)


def _date_from_text(text: pl.Expr) -> pl.Expr:
    # A five-digit number in a date column is an Excel serial day pasted as text.
    serial = pl.when(text.str.contains(r"^\d{5}$")).then(
        (text.cast(pl.Int64, strict=False) - EXCEL_EPOCH_OFFSET).cast(pl.Int32).cast(pl.Date)
    )
    # Four-digit years only: 01/02/25 is ambiguous and stays unread.
    iso = pl.when(text.str.contains(r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")).then(
        text.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
    )
    french = pl.when(text.str.contains(r"^\d{1,2}/\d{1,2}/\d{4}$")).then(text.str.to_date("%d/%m/%Y", strict=False))
    iso_month = pl.when(text.str.contains(r"^\d{4}-\d{2}$")).then(text.str.to_date("%Y-%m", strict=False))
    french_month = pl.when(text.str.contains(r"^\d{2}/\d{4}$")).then(text.str.to_date("%m/%Y", strict=False))
    return pl.coalesce(serial, iso, french, iso_month, french_month)


def coerce_expression(field: ContractField, dtype: pl.DataType, decimal_comma: bool) -> pl.Expr:
    """An expression that converts column ``field.name`` (of ``dtype``) to the contract type."""
    col = pl.col(field.name)
    kind = field.type
    if kind == "string":
        if dtype.is_float():
            # An identifier or a code typed as a number in a spreadsheet: 50.0 -> "50".
            return pl.when(col == col.floor()).then(col.cast(pl.Int64).cast(pl.String)).otherwise(col.cast(pl.String))
        return _clean_text(col)
    if kind in ("integer", "decimal"):
        target = pl.Int64 if kind == "integer" else pl.Float64
        if dtype.is_numeric():
            return col.cast(pl.Float64).cast(target, strict=False) if kind == "integer" else col.cast(pl.Float64)
        as_float = _number_text(col, decimal_comma).cast(pl.Float64, strict=False)
        if kind == "integer":
            return pl.when(as_float == as_float.floor()).then(as_float.cast(pl.Int64, strict=False))
        return as_float
    if kind in ("date", "month"):
        if dtype == pl.Date:
            value = col
        elif isinstance(dtype, pl.Datetime):
            value = col.dt.date()
        elif dtype.is_numeric():
            value = (col.cast(pl.Int64) - EXCEL_EPOCH_OFFSET).cast(pl.Int32).cast(pl.Date)
        else:
            value = _date_from_text(_clean_text(col))
        return value.dt.truncate("1mo") if kind == "month" else value
    if kind == "boolean":
        if dtype == pl.Boolean:
            return col
        text = _clean_text(col).str.to_lowercase()
        if dtype.is_numeric():
            text = col.cast(pl.Int64, strict=False).cast(pl.String)
        return pl.when(text.is_in(TRUE_WORDS)).then(True).when(text.is_in(FALSE_WORDS)).then(False)
    raise ValueError(f"unknown contract type {kind!r}")
