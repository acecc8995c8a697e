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

from pipelines.presentation.catalogue import Language, label, t
from pipelines.presentation.formats import day, integer, moment, money, month, number, percent

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


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


def display_table(frame: pl.DataFrame, columns: Sequence[Col], language: Language) -> pl.DataFrame:
    """The columns asked for, headed in words, every value formatted as text (what a page shows)."""
    out = {}
    for col in columns:
        fmt = _formatter(col.show, language)
        out[t(col.header, language)] = [fmt(v) for v in frame[col.name].to_list()]
    return pl.DataFrame(out, schema=dict.fromkeys(out, pl.String))


def export_table(frame: pl.DataFrame, columns: Sequence[Col], language: Language) -> pl.DataFrame:
    """The columns asked for, headed in words, codes labelled, numbers kept as numbers (what a CSV holds)."""
    exprs = []
    for col in columns:
        expr = pl.col(col.name)
        if col.show.startswith("code:"):
            kind = col.show.removeprefix("code:")
            values = frame[col.name].unique().to_list()
            expr = expr.replace_strict({v: label(kind, v, language) for v in values}, return_dtype=pl.String)
        exprs.append(expr.alias(t(col.header, language)))
    return frame.select(exprs)


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
    text = neutralised.write_csv(separator=separator, decimal_comma=decimal_comma)
    return "\ufeff".encode() + text.encode("utf-8")


def csv_bytes(frame: pl.DataFrame, language: Language) -> bytes:
    """CSV as the reader's spreadsheet expects it: French ``;`` and decimal commas, English ``,`` and points."""
    return csv_safe(frame, ";" if language == "fr" else ",", decimal_comma=language == "fr")
