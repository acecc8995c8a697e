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


_SIGN = r"^[+-]?"


def _grouped(separator: str, decimal: str | None = None) -> str:
    """Thousands in groups of three after ``separator``, then optionally ``decimal`` and decimals."""
    tail = rf"\{decimal}\d+" if decimal else ""
    return rf"{_SIGN}[1-9]\d{{0,2}}(?:\{separator}\d{{3}})+{tail}$"


def _number_text(expr: pl.Expr, decimal_comma: bool) -> pl.Expr:
    """A number written with a decimal comma or point and thousands separators, as ``1234.5``;
    null when its separators do not say one number unambiguously.

    The file's convention (``decimal_comma``) settles a lone separator of its own kind; a lone
    separator of the other kind is a decimal too (``40.5`` in a semicolon file is 40.5, never
    405), except before exactly three digits (``1.234``), which could be either: refused, never
    guessed. With both kinds, the rightmost is the decimal one and the other must group thousands.
    """
    text = _clean_text(expr).str.replace_all(r"[\s\u00a0\u2009\u202f']", "")
    decimal, other = (",", ".") if decimal_comma else (".", ",")
    commas = text.str.count_matches(",", literal=True)
    dots = text.str.count_matches(".", literal=True)
    own = commas if decimal_comma else dots
    foreign = dots if decimal_comma else commas
    plain = text.str.contains(rf"{_SIGN}(?:\d+(?:[.,]\d*)?|[.,]\d+)$")
    return (
        pl.when((commas > 0) & (dots > 0))
        .then(
            pl.when(text.str.contains(_grouped(".", ",")))
            .then(text.str.replace_all(".", "", literal=True).str.replace(",", ".", literal=True))
            .when(text.str.contains(_grouped(",", ".")))
            .then(text.str.replace_all(",", "", literal=True))
        )
        .when(own + foreign == 0)
        .then(text)
        .when((own == 1) & plain)
        .then(text.str.replace(decimal, ".", literal=True))
        .when((foreign == 1) & text.str.contains(rf"{_SIGN}[1-9]\d{{0,2}}\{other}\d{{3}}$"))
        .then(pl.lit(None, dtype=pl.String))
        .when((foreign == 1) & plain)
        .then(text.str.replace(other, ".", literal=True))
        .when(text.str.contains(_grouped(other)) | text.str.contains(_grouped(decimal)))
        .then(text.str.replace_all(r"[.,]", ""))
    )


def _date_from_text(text: pl.Expr) -> pl.Expr:
    # A five-digit number in a date column is an Excel serial day pasted as text.
    serial = pl.when(text.str.contains(r"^\d{5}$")).then(
        (text.cast(pl.Int64, strict=False) - EXCEL_EPOCH_OFFSET).cast(pl.Int32).cast(pl.Date)
    )
    # Four-digit years only: 01/02/25 is ambiguous and stays unread. Year first (ISO, or with
    # slashes or dots) or day first (slashes, dots or dashes, as French exports write it); a time
    # part (what spreadsheets add to a date cell saved as text) is ignored.
    time = r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)?$"
    year_first = "|".join(rf"\d{{4}}{s}\d{{1,2}}{s}\d{{1,2}}" for s in ("-", "/", r"\."))
    day_first = "|".join(rf"\d{{1,2}}{s}\d{{1,2}}{s}\d{{4}}" for s in ("-", "/", r"\."))
    iso = pl.when(text.str.contains(rf"^(?:{year_first}){time}")).then(
        text.str.replace(r"^(\d{4}).(\d{1,2}).(\d{1,2}).*$", "$1-$2-$3").str.to_date("%Y-%m-%d", strict=False)
    )
    french = pl.when(text.str.contains(rf"^(?:{day_first}){time}")).then(
        text.str.replace(r"^(\d{1,2}).(\d{1,2}).(\d{4}).*$", "$1/$2/$3").str.to_date("%d/%m/%Y", strict=False)
    )
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
