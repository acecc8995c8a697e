"""Turn a frame as read into the contract's column types, without losing or hiding a row.

A value that cannot be converted is reported by column, count and first line, never by its
content, so problems can be logged without leaking case values.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from pipelines.contract import ContractField, Entity
from pipelines.ingest.readers import SOURCE_ROW

TRUE_WORDS = ("true", "1", "oui", "yes", "vrai", "o", "y", "t")
FALSE_WORDS = ("false", "0", "non", "no", "faux", "n", "f")
EXCEL_EPOCH_OFFSET = 25569
"""Days between Excel's day 0 (1899-12-30) and 1970-01-01."""


@dataclass(frozen=True)
class CastProblem:
    column: str
    count: int
    first_line: int

    def describe(self, target: str) -> str:
        plural = "s" if self.count > 1 else ""
        return (
            f"column {self.column!r}: {self.count} value{plural} not readable as {target} "
            f"(first at line {self.first_line})"
        )


@dataclass(frozen=True)
class CoercedTable:
    frame: pl.DataFrame
    missing_required: list[str]
    unknown_columns: list[str]
    problems: list[tuple[ContractField, CastProblem]]


def _clean_text(expr: pl.Expr) -> pl.Expr:
    stripped = expr.cast(pl.String).str.strip_chars()
    return pl.when(stripped == "").then(None).otherwise(stripped)


def _number_text(expr: pl.Expr, decimal_comma: bool) -> pl.Expr:
    text = _clean_text(expr).str.replace_all(r"[\s\u00a0\u202f]", "")
    if decimal_comma:
        return text.str.replace_all(r"\.", "").str.replace(",", ".", literal=True)
    return text.str.replace_all(",", "", literal=True)


def _date_from_text(text: pl.Expr) -> pl.Expr:
    return pl.coalesce(
        text.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False),
        text.str.to_date("%d/%m/%Y", strict=False),
        text.str.to_date("%Y-%m", strict=False),
        text.str.to_date("%m/%Y", strict=False),
    )


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


def coerce_to_contract(frame: pl.DataFrame, entity: Entity, decimal_comma: bool) -> CoercedTable:
    """Cast every contract column; absent optional columns become null, extra columns are reported."""
    present = set(frame.columns)
    missing_required = [f.name for f in entity.fields if f.required and f.name not in present]
    unknown = sorted(present - set(entity.field_names) - {SOURCE_ROW})
    typed_columns = []
    for f in entity.fields:
        if f.name in present:
            typed_columns.append(
                coerce_expression(f, frame.schema[f.name], decimal_comma).cast(f.polars_type).alias(f.name)
            )
        else:
            typed_columns.append(pl.lit(None, dtype=f.polars_type).alias(f.name))
    typed = frame.select(pl.col(SOURCE_ROW), *typed_columns)

    problems: list[tuple[ContractField, CastProblem]] = []
    checks = [f for f in entity.fields if f.name in present]
    if checks and frame.height:
        failed = pl.DataFrame({f.name: frame[f.name].is_not_null() & typed[f.name].is_null() for f in checks})
        for f in checks:
            if frame.schema[f.name] == pl.String:
                raw_blank = frame[f.name].str.strip_chars().fill_null("") == ""
                bad = failed[f.name] & ~raw_blank
            else:
                bad = failed[f.name]
            count = int(bad.sum())
            if count:
                first = int(typed[SOURCE_ROW].filter(bad)[0])
                problems.append((f, CastProblem(f.name, count, first)))
    return CoercedTable(typed, missing_required, unknown, problems)
