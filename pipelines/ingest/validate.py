"""Row-level enforcement of the data contract, as one query in the engine.

Every check is a SQL expression generated from the contract and evaluated over the whole table
in one pass; each row gets the first failed check's reason (``ROW_CHECK_ORDER``: the most
fundamental problem first) and the column where it was found, or none. What SQL cannot say
stays in Python and runs on few values: the privacy guard's validators run on the candidates
the SQL prefilter (``prefilter``) leaves, once per distinct value, and identifiers that are not
plain ASCII get their one written form from ``keys.normalise_key``; both come back as small
tables the query joins.

``validate_table`` takes a table in an engine connection (``SourceTable``) and leaves the checked
rows there; given a Polars frame (tests, one-off checks) it returns frames.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import overload

import polars as pl

from pipelines.contract import ContractField, Entity, allowed_values
from pipelines.ingest.coerce import WHITE_SPACE_CODES, WHITE_SPACE_RE2, sql_string, strip_sql, text_sql, typed_layers
from pipelines.ingest.keys import key_columns, normalise_key
from pipelines.ingest.prefilter import ASCII_SQL, candidates_sql, shape_may_hold_identifier
from pipelines.ingest.privacy import (
    MAX_SCANNED_CHARS,
    find_identifiers,
    identifier_columns,
    identifier_hits,
    name_holds_identifier,
)
from pipelines.ingest.readers import FileProblem
from pipelines.ingest.reasons import Reason
from pipelines.ingest.source import POSITION, SOURCE_ROW, SourceTable, source_from_frame
from pipelines.warehouse import Connection, memory_connection

REASON = "_reason"
REASON_COLUMN = "_reason_column"
FORMULA_START = ("=", "+", "-", "@")
_SPACE = f"[{WHITE_SPACE_RE2}]"
_WORD = r"[\p{L}\p{M}\p{Nd}\p{Nl}\p{Pc}\x{200c}\x{200d}"
FREE_TEXT_FORMULA = (
    rf"^{_SPACE}*(?:=|[+\-@]{_SPACE}*(?:=|[A-Za-z_]{_WORD}.]*{_SPACE}*[(!|]"
    rf"|[\p{{Nd}}(][\p{{Nd}}{WHITE_SPACE_RE2}.,()]*[-+*/^&]))"
)
"""In free text a leading ``-``, ``+`` or ``@`` is a bullet or a mention (``- RDV pris``, ``+ 2h de
ménage``) unless a formula follows: a function or a link to another program (``@SUM(``, ``+cmd|``),
or arithmetic (``-2+3``). A leading ``=`` always is one. (Unicode classes spelt out: RE2's ``\\s``,
``\\w`` and ``\\d`` are ASCII.)"""
CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
EARLIEST_DATE = date(1900, 1, 1)
WHITE_SPACE_CHARACTERS = "".join(map(chr, WHITE_SPACE_CODES))
"""What ``coerce.strip_sql`` strips (Python's own ``strip`` also takes the separators U+001C-U+001F)."""
_BEFORE_PRIVACY = {Reason.CONTROL_CHARACTERS, Reason.FIELD_TOO_LONG}


@dataclass
class Checked:
    """The checked rows of a ``SourceTable``, left in the engine: ``table`` holds ``_source_row``,
    ``_position``, ``_reason``, ``_reason_column`` and every contract field, typed (identifiers in
    their one written form, not yet re-keyed)."""

    table: str
    ignored_columns: list[str]
    any_rejected: bool = True
    """Whether any row got a reason (False only when known: the rejected rows need no query then)."""


@dataclass(frozen=True)
class Found:
    """What Python found for the query: the columns where the guard flagged values, and whether any
    identifier needed Python to get its written form. (None: assume both, the query is then right
    whatever the tables hold.) The tables are made only when they hold something: a statement costs
    the engine milliseconds, and most files have neither."""

    flagged_columns: frozenset[int] | None = None
    keys_outside_ascii: bool = True


@dataclass
class Validated:
    accepted: pl.DataFrame
    """Contract columns, typed, plus ``_source_row``."""
    rejected: pl.DataFrame
    """``_source_row``, ``_reason`` and ``_reason_column`` of every quarantined row."""
    ignored_columns: list[str]


@overload
def validate_table(source: SourceTable, entity: Entity, decimal_comma: bool, agency: str, today: date) -> Checked: ...
@overload
def validate_table(
    source: pl.DataFrame, entity: Entity, decimal_comma: bool, agency: str, today: date
) -> Validated: ...
def validate_table(
    source: SourceTable | pl.DataFrame, entity: Entity, decimal_comma: bool, agency: str, today: date
) -> Checked | Validated:
    """Type and check one table; raise ``FileProblem`` when the file cannot be used at all."""
    if isinstance(source, pl.DataFrame):
        return _validate_frame(source, entity, decimal_comma, agency, today)
    columns = source.columns
    flagged = identifier_columns(columns)
    if flagged:
        # A column whose name holds a value (an e-mail as a header) is named by its position only.
        shown = [f"column {columns.index(c) + 1}" if name_holds_identifier(c) else c for c in flagged]
        raise FileProblem(
            Reason.IDENTIFIER_COLUMN,
            f"{len(flagged)} column(s) named like a direct identifier or holding one: {', '.join(sorted(shown))}",
        )
    missing = [f.name for f in entity.fields if f.required and f.name not in columns]
    if missing:
        raise FileProblem(Reason.MISSING_REQUIRED_COLUMN, f"required column(s) missing: {', '.join(missing)}")
    unknown = [c for c in columns if c not in entity.field_names]
    checked = f"{source.name}_checked"
    flagged_columns, outside_ascii = _register_flagged(source, entity)
    found = Found(flagged_columns, _register_keys(source, entity, outside_ascii))
    source.con.execute(
        f"create or replace temp table {checked} as {check_sql(source, entity, agency, today, decimal_comma, found)}"
    )
    return Checked(checked, unknown, _mark_duplicates(source.con, checked, entity))


def _validate_frame(frame: pl.DataFrame, entity: Entity, decimal_comma: bool, agency: str, today: date) -> Validated:
    con = memory_connection()
    try:
        checked = validate_table(source_from_frame(con, frame, "frame"), entity, decimal_comma, agency, today)
        rows = con.sql(f"select * from {checked.table} order by {POSITION}").pl()
    finally:
        con.close()
    rejected = rows.filter(pl.col(REASON).is_not_null()).select(SOURCE_ROW, REASON, REASON_COLUMN)
    accepted = rows.filter(pl.col(REASON).is_null()).select(SOURCE_ROW, *entity.field_names)
    return Validated(accepted, rejected, checked.ignored_columns)


# --- the privacy guard, on candidates only -------------------------------------------------------


def _scanned(source: SourceTable, entity: Entity) -> tuple[list[int], list[int]]:
    """Positions of the columns the guard scans: identifiers and codes (strict), then free text and
    columns outside the contract."""
    position = {name: i for i, name in enumerate(source.columns)}
    strict = [position[f.name] for f in entity.fields if f.name in position and f.type == "string" and not f.free_text]
    free = [position[f.name] for f in entity.fields if f.name in position and f.free_text]
    free += [i for i, name in enumerate(source.columns) if name not in entity.field_names]
    return strict, free


def _register_flagged(source: SourceTable, entity: Entity) -> tuple[frozenset[int], dict[int, set[str]]]:
    """``<source>_flagged(col, value)``: the values of scanned columns that hold a direct identifier.
    Returns the columns where some were found, and the values outside plain ASCII of each strict column
    (scanned anyway: the identifiers' written forms are taken from them, ``_register_keys``).

    Identifier and code values in plain ASCII are cleared in SQL (``prefilter``); allowed codes
    cannot hold one; the rest (other scripts, free text) go through the guard's own vectorised
    prefilter. The guard then decides on each distinct candidate. Every column is scanned by the same
    few statements (a statement costs the engine milliseconds however few its values: a small file's
    columns one by one cost more than its rows)."""
    strict, free = _scanned(source, entity)
    con = source.con
    found: list[tuple[int, str]] = []
    outside_ascii: dict[int, set[str]] = {}
    if strict:
        # Values are described once in SQL (distinct across the columns); their shapes (a few per thousand
        # values) are judged in Python; only the values worth the guard come back, with their columns.
        scanned, described = f"{source.name}_scanned", f"{source.name}_described"
        con.execute(
            f"create or replace temp table {scanned} as "
            + " union all ".join(
                f"select {i}::integer as col, v from ({_distinct_values(source, entity, i, MAX_SCANNED_CHARS)})"
                for i in strict
            )
        )
        con.execute(
            f"create or replace temp table {described} as " + candidates_sql(f"select distinct v from {scanned}")
        )
        shapes = con.execute(
            f"select distinct shape from {described} where ascii and not direct and shape is not null"
        ).fetchall()
        possible = [shape for (shape,) in shapes if shape_may_hold_identifier(shape)]
        rows = con.execute(
            f"select s.col, s.v, d.ascii from {scanned} as s join {described} as d using (v) "
            "where not d.ascii or d.direct or list_contains($1::varchar[], d.shape)",
            [possible],
        ).fetchall()
        verdicts: dict[str, bool] = {}  # one value in two columns is judged once
        for col, v, ascii in rows:
            if ascii and (verdicts[v] if v in verdicts else verdicts.setdefault(v, bool(find_identifiers(v)))):
                found.append((col, v))
        found += _hits(con, [(col, v) for col, v, ascii in rows if not ascii], free_text=False)
        for col, v, ascii in rows:
            if not ascii:
                outside_ascii.setdefault(int(col), set()).add(str(v))
    if free:
        each = [f"select {i}::integer as col, v from ({_distinct_values(source, entity, i)})" for i in free]
        others = con.execute(" union all ".join(each)).fetchall()
        found += _hits(con, [(col, v) for col, v in others], free_text=True)
    if found:  # else no column's check reads the table (``Found.flagged_columns`` is empty): not made
        table = pl.DataFrame(
            {"col": [i for i, _ in found], "value": [v for _, v in found]},
            schema={"col": pl.Int32, "value": pl.String},
        )
        _replace(con, f"{source.name}_flagged", table)
    return frozenset(i for i, _ in found), outside_ascii


def _distinct_values(source: SourceTable, entity: Entity, index: int, longest: int | None = None) -> str:
    """The distinct values ``v`` of a scanned column as text, allowed codes left out (they cannot hold one),
    and values over ``longest`` characters when it is given."""
    name = source.columns[index]
    text = text_sql(source.column(index), source.types[index])
    allowed = allowed_values(entity.field(name)) if name in entity.field_names else None
    not_a_code = f"not list_contains({_sql_list(allowed)}, {text})" if allowed else "true"
    short = f" and length({text}) <= {longest}" if longest is not None else ""
    return f"select distinct {text} as v from {source.name} where {text} is not null and {not_a_code}{short}"


def _hits(con: Connection, values: list[tuple[int, str]], free_text: bool) -> list[tuple[int, str]]:
    """The (column, value) pairs the guard flags, through its own vectorised prefilter."""
    if not values:
        return []
    frame = pl.DataFrame(
        {"col": [c for c, _ in values], "v": [v for _, v in values]}, schema={"col": pl.Int32, "v": pl.String}
    )
    hit, _ = identifier_hits(frame, [] if free_text else ["v"], ["v"] if free_text else [])
    return [(int(c), str(v)) for c, v in frame.filter(hit).iter_rows()]


def _register_keys(source: SourceTable, entity: Entity, scanned_outside_ascii: dict[int, set[str]]) -> bool:
    """``<source>_keys(value, normal)``: identifiers that are not plain ASCII, in their one written form
    (NFKC and the rest of ``keys.normalise_key``, which SQL cannot do).

    An identifier column the guard scans as a strict column (``_scanned``: every distinct value but
    allowed codes and values over ``MAX_SCANNED_CHARS``) needs no pass of its own: its values outside
    ASCII came back from the guard's scan, ``scanned_outside_ascii``, and each stripped of white space
    is the value the query looks up. (A value over ``MAX_SCANNED_CHARS`` is over any field's length too:
    its row is ``field_too_long`` whatever its written form.) Any other identifier column is read here."""
    strict, _ = _scanned(source, entity)
    values: set[str] = set()
    each = []
    for name in key_columns(entity):
        if name not in source.columns:
            continue
        index = source.columns.index(name)
        if index in strict and allowed_values(entity.field(name)) is None:
            stripped = (v.strip(WHITE_SPACE_CHARACTERS) for v in scanned_outside_ascii.get(index, ()))
            values.update(v for v in stripped if not v.isascii())
            continue
        clean = strip_sql(text_sql(source.column(index), source.types[index]))
        each.append(f"select {clean} as v from {source.name} where not {ASCII_SQL.format(v=clean)}")
    if each:
        values.update(v for (v,) in source.con.execute(" union ".join(each)).fetchall())
    if values:  # else the query reads no written form from the table (``Found.keys_outside_ascii``): not made
        normal = [normalise_key(v) or None for v in sorted(values)]
        _replace(
            source.con,
            f"{source.name}_keys",
            pl.DataFrame({"value": sorted(values), "normal": normal}, schema={"value": pl.String, "normal": pl.String}),
        )
    return bool(values)


def _replace(con: Connection, name: str, frame: pl.DataFrame) -> None:
    con.register("_incoming_small", frame)
    try:
        con.execute(f"create or replace temp table {name} as select * from _incoming_small")
    finally:
        con.unregister("_incoming_small")


def _sql_list(values: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(sql_string(v) for v in values) + "]::varchar[]"


# --- the query -----------------------------------------------------------------------------------


def _typed_columns(
    source: SourceTable, entity: Entity, decimal_comma: bool, keys_outside_ascii: bool = True
) -> tuple[list[list[str]], dict[str, str]]:
    """Layers of expressions (one projection each) computing every present contract field's typed
    value, and the name of the column holding each field's final typed value."""
    layers: list[list[str]] = []
    final: dict[str, str] = {}
    keys = set(key_columns(entity))
    for f in entity.fields:
        if f.name not in source.columns:
            continue
        index = source.columns.index(f.name)
        name = f"_t{index}"
        stripped = f"_s{index}" if source.types[index] == "VARCHAR" else None
        steps = typed_layers(f, source.column(index), source.types[index], decimal_comma, name, stripped)
        if f.name in keys:
            steps.append(_key_sql(f"{name}_{len(steps) - 1}", source.name, keys_outside_ascii))
        for depth, expression in enumerate(steps):
            while len(layers) <= depth:
                layers.append([])
            layers[depth].append(f"{expression} as {name}_{depth}")
        final[f.name] = f"{name}_{len(steps) - 1}"
    return layers, final


def _key_sql(value: str, source: str, outside_ascii: bool = True) -> str:
    """``keys.normalise_key`` in SQL for plain ASCII (white space folded, trimmed, upper case); other
    values from the ``<source>_keys`` table Python filled."""
    folded = f"nullif(upper(trim(regexp_replace({value}, '[\\t\\n\\x0b\\x0c\\r ]+', ' ', 'g'))), '')"
    # Most identifiers are already in their one form: upper case, no run of white space.
    ascii_form = f"case when regexp_matches({value}, '[a-z\\t\\n\\x0b\\x0c\\r]|  ') then {folded} else {value} end"
    other = f"(select k.normal from {source}_keys as k where k.value = {value})" if outside_ascii else "null"
    return f"case when {value} is null then null when {ASCII_SQL.format(v=value)} then {ascii_form} else {other} end"


def _checks(
    source: SourceTable, entity: Entity, agency: str, today: date, typed: dict[str, str]
) -> list[tuple[Reason, str, str]]:
    """Every row-level check as (reason, column, SQL true when it fails), in the order their reasons
    take precedence."""
    present = [f for f in entity.fields if f.name in source.columns]
    unknown = [i for i, c in enumerate(source.columns) if c not in entity.field_names]
    text_fields = [f for f in present if f.type == "string"]

    def text(name: str) -> str:
        index = source.columns.index(name)
        return text_sql(source.column(index), source.types[index])

    def raw(name: str) -> str:
        return source.column(source.columns.index(name))

    def stripped(name: str) -> str:
        index = source.columns.index(name)
        return f"_s{index}" if source.types[index] == "VARCHAR" else strip_sql(text(name))

    checks: list[tuple[Reason, str, str]] = []
    for name in [f.name for f in text_fields] + [source.columns[i] for i in unknown]:
        checks.append((Reason.CONTROL_CHARACTERS, name, f"regexp_matches({text(name)}, {sql_string(CONTROL)})"))
    for f in text_fields:
        checks.append((Reason.FIELD_TOO_LONG, f.name, f"length({text(f.name)}) > {f.max_length}"))
    for i in unknown:  # not stored, but scanned by the privacy guard and quoted in quarantine
        name = source.columns[i]
        checks.append((Reason.FIELD_TOO_LONG, name, f"length({text(name)}) > {MAX_SCANNED_CHARS}"))
    for f in text_fields:
        if f.free_text:
            starts = f"regexp_matches({text(f.name)}, {sql_string(FREE_TEXT_FORMULA)})"
        else:
            starts = f"left({stripped(f.name)}, 1) in ({', '.join(map(sql_string, FORMULA_START))})"
        checks.append((Reason.FORMULA_LIKE, f.name, starts))
    blank = {f.name: f"({raw(f.name)} is null or {stripped(f.name)} = '')" for f in present}
    for f in present:
        if f.required:
            checks.append((Reason.MISSING_VALUE, f.name, blank[f.name]))
    for f in present:
        checks.append((Reason.INVALID_TYPE, f.name, f"not {blank[f.name]} and {typed[f.name]} is null"))
    for f in present:
        checks += _value_checks(f, typed[f.name], today)
    for earlier, later in entity.date_order:
        if earlier in typed and later in typed:
            checks.append((Reason.INCONSISTENT_DATES, later, f"{typed[later]} < {typed[earlier]}"))
    if "agency_id" in typed and agency:
        expected = sql_string(normalise_key(agency))
        checks.append((Reason.AGENCY_MISMATCH, "agency_id", f"{typed['agency_id']} <> {expected}"))
    return checks


def _value_checks(f: ContractField, value: str, today: date) -> list[tuple[Reason, str, str]]:
    checks: list[tuple[Reason, str, str]] = []
    allowed = allowed_values(f)
    if allowed is not None and f.list_separator:
        ok = _plainly(value, plain_codes(allowed, f.list_separator), codes_rule(value, allowed, f.list_separator))
        checks.append((Reason.INVALID_CODE, f.name, f"{value} is not null and not {ok}"))
    elif allowed is not None:
        checks.append((Reason.INVALID_CODE, f.name, f"not list_contains({_sql_list(allowed)}, {value})"))
    if f.name == "zarit_items":
        ok = _plainly(value, ZARIT_ITEMS_PLAIN, zarit_items_rule(value))
        checks.append((Reason.OUT_OF_RANGE, f.name, f"{value} is not null and not {ok}"))
    if f.min is not None:
        checks.append((Reason.OUT_OF_RANGE, f.name, f"{value} < {f.min!r}"))
    if f.max is not None:
        checks.append((Reason.OUT_OF_RANGE, f.name, f"{value} > {f.max!r}"))
    if f.type in ("date", "month"):
        checks.append((Reason.OUT_OF_RANGE, f.name, f"{value} < date '{EARLIEST_DATE.isoformat()}'"))
        checks.append((Reason.FUTURE_DATE, f.name, f"{value} > date '{today.isoformat()}'"))
    return checks


def _plainly(value: str, plain: str | None, rule: str) -> str:
    """``rule``, decided first by ``plain``: a regular expression (RE2) that only values ``rule`` accepts
    match whole. Each item of a list through ``strip_sql`` and a cast costs the engine ten times one
    expression over the whole value, and nearly every value is written plainly; the rest get ``rule``."""
    if plain is None:
        return rule
    return f"(case when regexp_full_match({value}, {sql_string(plain)}) then true else {rule} end)"


def codes_rule(value: str, allowed: tuple[str, ...], separator: str) -> str:
    """Every item of the list (stripped of white space) is an allowed code."""
    items = f"list_transform(string_split({value}, {sql_string(separator)}), lambda x: {strip_sql('x')})"
    return f"list_bool_and(list_transform({items}, lambda x: list_contains({_sql_list(allowed)}, x)))"


def plain_codes(allowed: tuple[str, ...], separator: str) -> str | None:
    """Lists of allowed codes as written plainly: the codes themselves, separated, nothing around. A code
    that the split or the strip would change is never accepted as written: left to the rule. So is every
    list with a separator of several characters (a code's end and the separator's start can overlap:
    ``a|`` then ``||`` splits as ``a``, ``|b``)."""
    if len(separator) != 1:
        return None
    codes = [a for a in allowed if a and separator not in a and a == a.strip(WHITE_SPACE_CHARACTERS)]
    if not codes:
        return None
    code = "(?:" + "|".join(re.escape(a) for a in codes) + ")"
    return f"{code}(?:{re.escape(separator)}{code})*"


ZARIT_ITEMS_MOST = 22
_ZARIT_PLAIN_ITEM = "(?:[0-3](?:[.,][05])?|4(?:[.,]0)?)?"  # 0 to 4 in halves, or blank (counted 0)
ZARIT_ITEMS_PLAIN = f"{_ZARIT_PLAIN_ITEM}(?:\\|{_ZARIT_PLAIN_ITEM}){{0,{ZARIT_ITEMS_MOST - 1}}}"
"""Zarit items as written plainly (``zarit_items_rule`` accepts every such value)."""


def zarit_items_rule(value: str) -> str:
    """Items separated by ``|`` (empty ones left blank), at most 22, each a score from 0 to 4 in
    halves (the mini-Zarit scores ½); an item that is not a number fails."""
    items = f"list_transform(string_split({value}, '|'), lambda x: {strip_sql('x')})"
    score = "case when x = '' then 0.0 else try_cast(replace(x, ',', '.') as double) end"
    scores = f"list_transform({items}, lambda x: {score})"
    each = f"list_transform({scores}, lambda s: coalesce(s between 0 and 4 and s * 2 = round(s * 2), false))"
    return f"(list_bool_and({each}) and len(string_split({value}, '|')) <= {ZARIT_ITEMS_MOST})"


def check_sql(
    source: SourceTable, entity: Entity, agency: str, today: date, decimal_comma: bool, found: Found | None = None
) -> str:
    """The query giving every row of ``source`` its reason (or none) and its typed values."""
    found = found or Found()
    layers, typed = _typed_columns(source, entity, decimal_comma, found.keys_outside_ascii)
    strict, free = _scanned(source, entity)
    flagged = f"{source.name}_flagged"
    hits = [
        (
            source.columns[i],
            f"{text_sql(source.column(i), source.types[i])} in (select value from {flagged} where col = {i})"
            if found.flagged_columns is None or i in found.flagged_columns
            else "false",
        )
        for i in strict + free
    ]
    checks = _checks(source, entity, agency, today, typed)
    position = next(i for i, (reason, _, _) in enumerate(checks) if reason not in _BEFORE_PRIVACY)
    first_hit = "case " + " ".join(f"when _hit{n} then {sql_string(name)}" for n, (name, _) in enumerate(hits)) + " end"
    any_hit = " or ".join(f"_hit{n}" for n in range(len(hits))) or "false"
    checks.insert(position, (Reason.IDENTIFIER_IN_VALUE, "", any_hit))
    failed = "case " + " ".join(f"when {sql} then {n + 1}" for n, (_, _, sql) in enumerate(checks)) + " end"
    reasons = "[" + ", ".join(sql_string(r.value) for r, _, _ in checks) + "]"
    names = "[" + ", ".join(sql_string(name) for _, name, _ in checks) + "]"
    reason = f"{reasons}[_failed]"
    column = f"case when _failed = {position + 1} then {first_hit} else {names}[_failed] end"
    stripped = [
        f"{strip_sql(source.column(i))} as _s{i}"
        for i, name in enumerate(source.columns)
        if name in entity.field_names and source.types[i] == "VARCHAR"
    ]
    query = (
        "select *, "
        + ", ".join([f"{sql} as _hit{n}" for n, (_, sql) in enumerate(hits)] + stripped or ["null as _nothing"])
        + f" from {source.rows_sql}"
    )
    for layer in layers:
        query = f"select *, {', '.join(layer)} from ({query})"
    query = f"select *, {failed} as _failed from ({query})"
    values = ", ".join(f"{typed.get(f.name, f'cast(null as {f.duckdb_type})')} as {f.name}" for f in entity.fields)
    query = (
        f"select {SOURCE_ROW}, {POSITION}, {reason} as {REASON}, {column} as {REASON_COLUMN}, {values} from ({query})"
    )
    return query


def _mark_duplicates(con: Connection, checked: str, entity: Entity) -> bool:
    """Among rows that passed every check, the second and later copies of a row or a key. Keys are
    almost always unique: that is checked first (a hash aggregate, which counts the rows refused so
    far too), the numbering only when not. Returns whether any row of the table has a reason."""
    ok = f"{REASON} is null"
    every = ", ".join(entity.field_names)
    key = ", ".join(entity.primary_key)
    refused, repeated = con.execute(
        f"select count(*) filter (where not ({ok})), "
        f"count(*) filter (where {ok}) - count(distinct ({key})) filter (where {ok}) from {checked}"
    ).fetchall()[0]
    if not repeated:
        return bool(refused)
    numbered = (
        f"select {POSITION} as p, row_number() over (partition by {every} order by {POSITION}) as copy, "
        f"row_number() over (partition by {key} order by {POSITION}) as key_copy from {checked} where {ok}"
    )
    con.execute(
        f"update {checked} set {REASON} = case when n.copy > 1 then '{Reason.DUPLICATE_ROW.value}' "
        f"else '{Reason.DUPLICATE_KEY.value}' end, {REASON_COLUMN} = case when n.copy > 1 then {REASON_COLUMN} "
        f"else {sql_string(','.join(entity.primary_key))} end "
        f"from ({numbered}) as n where {checked}.{POSITION} = n.p and (n.copy > 1 or n.key_copy > 1)"
    )
    return True
