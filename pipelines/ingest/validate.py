"""Row-level enforcement of the data contract: each row is accepted, typed, or quarantined with a reason.

All checks are vectorised Polars expressions over the whole table. A row that fails several
checks is quarantined with the first reason in ``ROW_CHECK_ORDER`` (the most fundamental
problem first), and the column where it was found.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from pipelines.contract import ContractField, Entity, allowed_values
from pipelines.ingest.coerce import coerce_expression
from pipelines.ingest.keys import key_columns, key_expression, normalise_key
from pipelines.ingest.privacy import MAX_SCANNED_CHARS, identifier_columns, identifier_hits, name_holds_identifier
from pipelines.ingest.readers import SOURCE_ROW, FileProblem
from pipelines.ingest.reasons import Reason

REASON = "_reason"
REASON_COLUMN = "_reason_column"
FORMULA_START = ("=", "+", "-", "@")
FREE_TEXT_FORMULA = r"^\s*(?:=|[+\-@]\s*(?:=|[A-Za-z_][\w.]*\s*[(!|]|[\d(][\d\s.,()]*[-+*/^&]))"
"""In free text a leading ``-``, ``+`` or ``@`` is a bullet or a mention (``- RDV pris``, ``+ 2h de
ménage``) unless a formula follows: a function or a link to another program (``@SUM(``, ``+cmd|``),
or arithmetic (``-2+3``). A leading ``=`` always is one."""
CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
EARLIEST_DATE = date(1900, 1, 1)


@dataclass
class Validated:
    accepted: pl.DataFrame
    """Contract columns, typed, plus ``_source_row``."""
    rejected: pl.DataFrame
    """``_source_row``, ``_reason`` and ``_reason_column`` of every quarantined row."""
    ignored_columns: list[str]


def _text(name: str) -> pl.Expr:
    return pl.col(name).cast(pl.String)


def _check(reason: Reason, column: str, failed: pl.Expr) -> tuple[Reason, str, pl.Expr]:
    return reason, column, failed.fill_null(False)


def _list_items_ok(field: ContractField) -> pl.Expr:
    items = _text(field.name).str.split(field.list_separator or "|").list.eval(pl.element().str.strip_chars())
    allowed = list(allowed_values(field) or ())
    return items.list.eval(pl.element().is_in(allowed)).list.all()


def _zarit_items_ok(name: str) -> pl.Expr:
    items = _text(name).str.split("|").list.eval(pl.element().str.strip_chars())
    numbers = items.list.eval(
        pl.when(pl.element() == "")
        .then(pl.lit(0.0))
        .otherwise(pl.element().str.replace(",", ".", literal=True).cast(pl.Float64, strict=False))
    )
    in_range = numbers.list.eval(pl.element().is_between(0, 4) & (pl.element() * 2 == (pl.element() * 2).round(0)))
    return in_range.list.all() & (items.list.len() <= 22)


TYPED_PREFIX = "__typed_"


def typed_expressions(frame: pl.DataFrame, entity: Entity, decimal_comma: bool) -> dict[str, pl.Expr]:
    """Each present contract column converted to its type; identifiers in their one written form."""
    keys = set(key_columns(entity))
    typed = {}
    for f in entity.fields:
        if f.name not in frame.columns:
            continue
        expression = coerce_expression(f, frame.schema[f.name], decimal_comma).cast(f.polars_type)
        typed[f.name] = key_expression(expression) if f.name in keys else expression
    return typed


def row_checks(
    frame: pl.DataFrame, entity: Entity, agency: str, today: date, typed: dict[str, pl.Expr]
) -> list[tuple[Reason, str, pl.Expr]]:
    """Every row-level check, in the order their reasons take precedence.

    ``typed`` gives each present contract column converted to its type (computed once).
    """
    present = [f for f in entity.fields if f.name in frame.columns]
    unknown = [c for c in frame.columns if c not in entity.field_names and c != SOURCE_ROW]
    text_fields = [f for f in present if f.type == "string"]
    checks: list[tuple[Reason, str, pl.Expr]] = []
    for column in [f.name for f in text_fields] + unknown:
        checks.append(_check(Reason.CONTROL_CHARACTERS, column, _text(column).str.contains(CONTROL)))
    for f in text_fields:
        checks.append(_check(Reason.FIELD_TOO_LONG, f.name, _text(f.name).str.len_chars() > f.max_length))
    for column in unknown:  # not stored, but scanned by the privacy guard and quoted in quarantine
        checks.append(_check(Reason.FIELD_TOO_LONG, column, _text(column).str.len_chars() > MAX_SCANNED_CHARS))
    for f in text_fields:
        if f.free_text:
            starts = _text(f.name).str.contains(FREE_TEXT_FORMULA)
        else:
            starts = pl.any_horizontal(_text(f.name).str.strip_chars_start().str.starts_with(s) for s in FORMULA_START)
        checks.append(_check(Reason.FORMULA_LIKE, f.name, starts))
    for f in present:
        if f.required:
            missing = pl.col(f.name).is_null() | (_text(f.name).str.strip_chars() == "")
            checks.append(_check(Reason.MISSING_VALUE, f.name, missing))
    for f in present:
        blank = pl.col(f.name).is_null() | (_text(f.name).str.strip_chars() == "")
        checks.append(_check(Reason.INVALID_TYPE, f.name, ~blank & typed[f.name].is_null()))
    for f in present:
        allowed = allowed_values(f)
        if allowed is not None and f.list_separator:
            checks.append(_check(Reason.INVALID_CODE, f.name, typed[f.name].is_not_null() & ~_list_items_ok(f)))
        elif allowed is not None:
            checks.append(_check(Reason.INVALID_CODE, f.name, ~typed[f.name].is_in(list(allowed))))
        if f.name == "zarit_items":
            checks.append(_check(Reason.OUT_OF_RANGE, f.name, typed[f.name].is_not_null() & ~_zarit_items_ok(f.name)))
        if f.min is not None:
            checks.append(_check(Reason.OUT_OF_RANGE, f.name, typed[f.name] < f.min))
        if f.max is not None:
            checks.append(_check(Reason.OUT_OF_RANGE, f.name, typed[f.name] > f.max))
        if f.type in ("date", "month"):
            checks.append(_check(Reason.OUT_OF_RANGE, f.name, typed[f.name] < pl.lit(EARLIEST_DATE)))
            checks.append(_check(Reason.FUTURE_DATE, f.name, typed[f.name] > pl.lit(today)))
    for earlier, later in entity.date_order:
        if earlier in typed and later in typed:
            checks.append(_check(Reason.INCONSISTENT_DATES, later, typed[later] < typed[earlier]))
    if "agency_id" in typed and agency:
        checks.append(_check(Reason.AGENCY_MISMATCH, "agency_id", typed["agency_id"] != pl.lit(normalise_key(agency))))
    return checks


def _first_failure(frame: pl.DataFrame, checks: list[tuple[Reason, str, pl.Expr]]) -> pl.DataFrame:
    """Add ``_reason`` and ``_reason_column``: the first failed check of each row, if any."""
    flags = frame.with_columns(failed.alias(f"__check_{i}") for i, (_, _, failed) in enumerate(checks))
    candidates: list[pl.Expr] = [
        pl.when(pl.col(f"__check_{i}")).then(pl.lit(i, dtype=pl.Int32)) for i in range(len(checks))
    ]
    first = pl.coalesce(candidates or [pl.lit(None, dtype=pl.Int32)])
    reasons = {i: code.value for i, (code, _, _) in enumerate(checks)}
    columns = {i: name for i, (_, name, _) in enumerate(checks)}
    return (
        flags.with_columns(first.alias("__first"))
        .with_columns(
            pl.col("__first").replace_strict(reasons, default=None, return_dtype=pl.String).alias(REASON),
            pl.col("__first").replace_strict(columns, default=None, return_dtype=pl.String).alias(REASON_COLUMN),
        )
        .drop("__first", *(f"__check_{i}" for i in range(len(checks))))
    )


def validate_table(frame: pl.DataFrame, entity: Entity, decimal_comma: bool, agency: str, today: date) -> Validated:
    """Type and check one table; raise ``FileProblem`` when the file cannot be used at all."""
    columns = [c for c in frame.columns if c != SOURCE_ROW]
    flagged = identifier_columns(columns)
    if flagged:
        # A column whose name holds a value (an e-mail as a header) is named by its position only.
        shown = [f"column {columns.index(c) + 1}" if name_holds_identifier(c) else c for c in flagged]
        raise FileProblem(
            Reason.IDENTIFIER_COLUMN,
            f"{len(flagged)} column(s) named like a direct identifier or holding one: {', '.join(sorted(shown))}",
        )
    missing = [f.name for f in entity.fields if f.required and f.name not in frame.columns]
    if missing:
        raise FileProblem(Reason.MISSING_REQUIRED_COLUMN, f"required column(s) missing: {', '.join(missing)}")
    unknown = [c for c in columns if c not in entity.field_names]

    strict = [f.name for f in entity.fields if f.name in frame.columns and f.type == "string" and not f.free_text]
    free_text = [f.name for f in entity.fields if f.name in frame.columns and f.free_text] + unknown
    privacy_hit, privacy_column = identifier_hits(frame, strict, free_text)

    expressions = typed_expressions(frame, entity, decimal_comma)
    with_types = frame.with_columns(
        *(expression.alias(TYPED_PREFIX + name) for name, expression in expressions.items()),
        privacy_hit.alias("_privacy_hit"),
        privacy_column.alias("_privacy_column"),
    )
    typed_columns = {name: pl.col(TYPED_PREFIX + name) for name in expressions}
    checks = row_checks(frame, entity, agency, today, typed_columns)
    position = next(i for i, (reason, _, _) in enumerate(checks) if reason not in _BEFORE_PRIVACY)
    checks.insert(position, (Reason.IDENTIFIER_IN_VALUE, "", pl.col("_privacy_hit")))
    with_reasons = _first_failure(with_types, checks).with_columns(
        pl.when(pl.col(REASON) == Reason.IDENTIFIER_IN_VALUE.value)
        .then(pl.col("_privacy_column"))
        .otherwise(pl.col(REASON_COLUMN))
        .alias(REASON_COLUMN)
    )
    typed = with_reasons.select(
        SOURCE_ROW,
        REASON,
        REASON_COLUMN,
        *(
            (pl.col(TYPED_PREFIX + f.name) if f.name in expressions else pl.lit(None, dtype=f.polars_type)).alias(
                f.name
            )
            for f in entity.fields
        ),
    )
    typed = _mark_duplicates(typed, entity)
    rejected = typed.filter(pl.col(REASON).is_not_null()).select(SOURCE_ROW, REASON, REASON_COLUMN)
    accepted = typed.filter(pl.col(REASON).is_null()).drop(REASON, REASON_COLUMN)
    return Validated(accepted, rejected, unknown)


_BEFORE_PRIVACY = {Reason.CONTROL_CHARACTERS, Reason.FIELD_TOO_LONG}


def _mark_duplicates(typed: pl.DataFrame, entity: Entity) -> pl.DataFrame:
    """Among rows that passed every check, the second and later copies of a row or a key."""
    values = entity.field_names
    key = list(entity.primary_key)
    ok = pl.col(REASON).is_null()
    indexed = typed.with_columns(pl.int_range(pl.len()).alias("_order"))
    valid = indexed.filter(ok)
    first_of_row = valid.group_by(values).agg(pl.col("_order").min().alias("_first_row"))
    first_of_key = valid.group_by(key).agg(pl.col("_order").min().alias("_first_key"))
    marked = (
        indexed.join(first_of_row, on=values, how="left", nulls_equal=True, maintain_order="left")
        .join(first_of_key, on=key, how="left", nulls_equal=True, maintain_order="left")
        .with_columns(
            pl.when(ok & (pl.col("_order") > pl.col("_first_row")))
            .then(pl.lit(Reason.DUPLICATE_ROW.value))
            .when(ok & (pl.col("_order") > pl.col("_first_key")))
            .then(pl.lit(Reason.DUPLICATE_KEY.value))
            .otherwise(pl.col(REASON))
            .alias(REASON),
        )
        .with_columns(
            pl.when(pl.col(REASON) == Reason.DUPLICATE_KEY.value)
            .then(pl.lit(",".join(key)))
            .otherwise(pl.col(REASON_COLUMN))
            .alias(REASON_COLUMN)
        )
    )
    return marked.sort("_order").drop("_order", "_first_row", "_first_key")
