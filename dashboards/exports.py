"""Tables as people read them: labelled columns and codes, numbers formatted in the reader's language, and CSV
that a spreadsheet opens safely.

A table shown or exported is described once by its columns (``Col``): which column, its header's catalogue
key, and how to show its values (a code's label, a whole count, a decimal, a share, money, a date). On a page
every value is formatted with Babel (« 1 234 », « 12 % », « −345 647 € », « 30 nov. 2026 »); in a CSV the
numbers stay numbers (French: semicolons and decimal commas) and only headers and codes are put into words.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import polars as pl

from pipelines.presentation.catalogue import Language, label, natural_rank, t
from pipelines.presentation.formats import day, integer, moment, money, month, number, percent

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CSV_DATE = "%d/%m/%Y"


@dataclass(frozen=True)
class Col:
    """One column of a shown table: ``name`` in the frame, ``header`` a catalogue key, ``show`` how values read:
    ``text``, ``code:<kind>``, ``int``, ``num1``, ``num2``, ``pct``, ``money``, ``day``, ``month``, ``moment``,
    ``yesno``."""

    name: str
    header: str
    show: str = "text"


def _formatter(show: str, language: Language) -> Callable[[Any], str]:
    if show.startswith("code:"):
        kind = show.removeprefix("code:")
        return lambda v: label(kind, v, language)
    formats: dict[str, Callable[[Any], str]] = {
        "text": lambda v: "" if v is None else str(v),
        "int": lambda v: integer(v, language),
        "num1": lambda v: number(v, 1, language),
        "num2": lambda v: number(v, 2, language),
        "pct": lambda v: percent(v, 0, language),
        "money": lambda v: money(v, language),
        "day": lambda v: day(v, language),
        "month": lambda v: t("value.not_shown", language) if v is None else month(v, language),
        "moment": lambda v: moment(v.isoformat() if isinstance(v, datetime | date) else v, language),
        "yesno": lambda v: t("common.yes" if v else "common.no", language),
    }
    return formats[show]


def in_natural_order(frame: pl.DataFrame, kinds: dict[str, str]) -> pl.DataFrame:
    """Rows sorted by their codes' natural order (``kinds``: column -> kind), « avant » before « après »."""
    if frame.is_empty():
        return frame
    ranks = [
        pl.Series(f"_rank_{i}", [natural_rank(kind, code) for code in frame[column]], dtype=pl.Int64)
        for i, (column, kind) in enumerate(kinds.items())
    ]
    return frame.with_columns(ranks).sort([r.name for r in ranks], maintain_order=True).drop([r.name for r in ranks])


def display_table(frame: pl.DataFrame, columns: Sequence[Col], language: Language) -> pl.DataFrame:
    """The columns asked for, headed in words, every value formatted as text (what a page shows)."""
    out = {}
    for col in columns:
        fmt = _formatter(col.show, language)
        out[t(col.header, language)] = [fmt(v) for v in frame[col.name].to_list()]
    return pl.DataFrame(out, schema=dict.fromkeys(out, pl.String))


EXPORT_DIGITS = {"int": 0, "num1": 1, "num2": 2, "pct": 3, "money": 0}
"""Decimals a CSV keeps for each kind of number: as many as the page shows (a share keeps three, 0.123, the page's
12 %), never a float's seventeen."""


def _export_expr(frame: pl.DataFrame, col: Col, language: Language) -> pl.Expr:
    expr = pl.col(col.name)
    dtype = frame.schema[col.name]
    if col.show.startswith("code:"):
        kind = col.show.removeprefix("code:")
        values = frame[col.name].unique().to_list()
        return expr.replace_strict({v: label(kind, v, language) for v in values}, return_dtype=pl.String)
    if col.show in EXPORT_DIGITS and dtype.is_numeric():
        digits = EXPORT_DIGITS[col.show]
        rounded = expr.cast(pl.Float64).round(digits)
        return rounded.cast(pl.Int64) if digits == 0 else rounded
    if col.show == "moment" or dtype == pl.Datetime:
        # A timestamp is written as the page shows it (Paris time, « 30 nov. 2026, 14:05 »), never in ISO form.
        return expr.map_elements(
            lambda v: moment(v.isoformat() if isinstance(v, datetime | date) else v, language),
            return_dtype=pl.String,
        )
    return expr


def export_table(frame: pl.DataFrame, columns: Sequence[Col], language: Language) -> pl.DataFrame:
    """The columns asked for, headed in words, codes labelled, numbers kept as numbers rounded as the page shows
    them, timestamps in words (what a CSV holds; dates are written day first by ``csv_safe``)."""
    return frame.select(_export_expr(frame, col, language).alias(t(col.header, language)) for col in columns)


def csv_safe(frame: pl.DataFrame, separator: str = ",", decimal_comma: bool = False) -> bytes:
    """CSV in UTF-8 with BOM (Excel reads it), text cells that a spreadsheet would run as formulas prefixed with '."""
    text_columns = [c for c, dtype in frame.schema.items() if dtype == pl.String]
    neutralised = (
        frame.with_columns(
            pl.when(pl.any_horizontal(pl.col(c).str.starts_with(p) for p in FORMULA_PREFIXES))
            .then(pl.lit("'") + pl.col(c))
            .otherwise(pl.col(c))
            .alias(c)
            for c in text_columns
        )
        if text_columns
        else frame
    )
    # Dates day first (30/11/2026), as French and British spreadsheets read them, never in ISO form.
    text = neutralised.write_csv(separator=separator, decimal_comma=decimal_comma, date_format=CSV_DATE)
    return "\ufeff".encode() + text.encode("utf-8")


def csv_bytes(frame: pl.DataFrame, language: Language) -> bytes:
    """CSV as the reader's spreadsheet expects it: French ``;`` and decimal commas, English ``,`` and points."""
    return csv_safe(frame, ";" if language == "fr" else ",", decimal_comma=language == "fr")
