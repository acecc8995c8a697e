"""SQL that turns a column as read into the contract's type, in the engine.

A value that cannot be converted becomes null; ``pipelines.ingest.validate`` compares the typed
column with the raw one to quarantine those rows. Every function here returns a SQL expression
over a column expression (already quoted by the caller): the conversion rules are the same for
every reader, whatever type the reader gave a column (text from CSV and JSON Lines; numbers,
dates and booleans from Parquet and XLSX).
"""

from __future__ import annotations

from pipelines.contract import ContractField

TRUE_WORDS = ("true", "1", "oui", "yes", "vrai", "o", "y", "t")
FALSE_WORDS = ("false", "0", "non", "no", "faux", "n", "f")
EXCEL_EPOCH_OFFSET = 25569
"""Days between Excel's day 0 (1899-12-30) and 1970-01-01."""

WHITE_SPACE_CODES = (9, 10, 11, 12, 13, 32, 133, 160, 5760, *tuple(range(8192, 8203)), 8232, 8233, 8239, 8287, 12288)
"""``privacy.WHITE_SPACE`` (Unicode's White_Space) as code points (a test checks they agree)."""
WHITE_SPACE_SQL = " || ".join(f"chr({code})" for code in WHITE_SPACE_CODES)
"""Unicode's White_Space, as a SQL string (what Polars' and Python's ``strip`` remove)."""
WHITE_SPACE_RE2 = "".join(f"\\x{{{code:x}}}" for code in WHITE_SPACE_CODES)
"""The same characters for a RE2 character class."""
NUMERIC_TYPES = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}
    | {"FLOAT", "DOUBLE", "REAL"}
)
FLOAT_TYPES = frozenset({"FLOAT", "DOUBLE", "REAL"})
FLOAT_TEXT = r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:inf|infinity|nan))"
"""What a text cast to a float accepts (DuckDB also takes underscores and spaces: refused here)."""


def text_sql(column: str, source_type: str) -> str:
    """The column as text, as it was read."""
    return column if source_type == "VARCHAR" else f"cast({column} as varchar)"


def strip_sql(text: str, start: bool = True, end: bool = True) -> str:
    """``text`` without Unicode white space at its start and end (``str.strip``). DuckDB's ``trim``
    with a set of characters costs fifteen times a regular expression: the rare value that needs it
    is found first."""
    ends = "|".join(([f"^[{WHITE_SPACE_RE2}]"] if start else []) + ([f"[{WHITE_SPACE_RE2}]$"] if end else []))
    runs = "|".join(([f"^[{WHITE_SPACE_RE2}]+"] if start else []) + ([f"[{WHITE_SPACE_RE2}]+$"] if end else []))
    return (
        f"case when regexp_matches({text}, {sql_string(ends)}) "
        f"then regexp_replace({text}, {sql_string(runs)}, '', 'g') else {text} end"
    )


def clean_text_sql(column: str, source_type: str) -> str:
    """Trimmed text, null when blank."""
    return f"nullif({strip_sql(text_sql(column, source_type))}, '')"


def sql_string(text: str) -> str:
    """A constant of ours as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _grouped(separator: str, decimal: str | None = None) -> str:
    """Thousands in groups of three after ``separator``, then optionally ``decimal`` and decimals."""
    tail = rf"\{decimal}[0-9]+" if decimal else ""
    return rf"[+-]?[1-9][0-9]{{0,2}}(?:\{separator}[0-9]{{3}})+{tail}"


def number_text_sql(t: str, decimal_comma: bool) -> str:
    """``_number_text_sql`` with the common forms (digits, and one decimal separator of the file's
    kind) settled first: same answers, a fraction of the work."""
    simple = f"regexp_full_match({t}, '[+-]?[0-9]+')"
    if decimal_comma:
        own = f"regexp_full_match({t}, '[+-]?[0-9]+,[0-9]+')"
        return (
            f"case when {simple} then {t} when {own} then replace({t}, ',', '.') else {_number_text_sql(t, True)} end"
        )
    own = f"regexp_full_match({t}, '[+-]?[0-9]+\\.[0-9]+')"
    return f"case when {simple} or {own} then {t} else {_number_text_sql(t, False)} end"


def _number_text_sql(t: str, decimal_comma: bool) -> str:
    """A number written with a decimal comma or point and thousands separators, as ``1234.5``; null
    when its separators do not say one number unambiguously. ``t`` is a column of cleaned text
    without spaces (``stripped_number_sql``).

    The file's convention (``decimal_comma``) settles a lone separator of its own kind; a lone
    separator of the other kind is a decimal too (``40.5`` in a semicolon file is 40.5, never
    405), except before exactly three digits (``1.234``), which could be either: refused, never
    guessed. With both kinds, the rightmost is the decimal one and the other must group thousands.
    """
    decimal, other = (",", ".") if decimal_comma else (".", ",")
    commas = f"(length({t}) - length(replace({t}, ',', '')))"
    dots = f"(length({t}) - length(replace({t}, '.', '')))"
    own, foreign = (commas, dots) if decimal_comma else (dots, commas)
    plain = f"regexp_full_match({t}, '[+-]?(?:[0-9]+(?:[.,][0-9]*)?|[.,][0-9]+)')"
    lone_pattern = rf"[+-]?[1-9][0-9]{{0,2}}\{other}[0-9]{{3}}"
    lone_foreign = f"regexp_full_match({t}, {sql_string(lone_pattern)})"
    return (
        f"case when {commas} > 0 and {dots} > 0 then "
        f"case when regexp_full_match({t}, {sql_string(_grouped('.', ','))}) "
        f"then replace(replace({t}, '.', ''), ',', '.') "
        f"when regexp_full_match({t}, {sql_string(_grouped(',', '.'))}) then replace({t}, ',', '') end "
        f"when {own} + {foreign} = 0 then {t} "
        f"when {own} = 1 and {plain} then replace({t}, {sql_string(decimal)}, '.') "
        f"when {foreign} = 1 and {lone_foreign} then null "
        f"when {foreign} = 1 and {plain} then replace({t}, {sql_string(other)}, '.') "
        f"when regexp_full_match({t}, {sql_string(_grouped(other))}) "
        f"or regexp_full_match({t}, {sql_string(_grouped(decimal))}) then regexp_replace({t}, '[.,]', '', 'g') end"
    )


def stripped_number_sql(clean: str) -> str:
    """Cleaned text without the spaces and apostrophes that group thousands."""
    return f"regexp_replace({clean}, '[{WHITE_SPACE_RE2}'']', '', 'g')"


def float_from_text_sql(text: str) -> str:
    return f"case when regexp_full_match({text}, {sql_string(FLOAT_TEXT)}) then try_cast({text} as double) end"


def date_from_text_sql(d: str) -> str:
    """A date from cleaned text: year first or day first with any of three separators (a time part
    ignored), an Excel serial day, or a month (``yyyy-mm``, ``mm/yyyy``); four-digit years only
    (``01/02/25`` is ambiguous and stays unread)."""
    time = r"(?:[ T][0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?)?"
    year_first = "|".join(rf"[0-9]{{4}}{s}[0-9]{{1,2}}{s}[0-9]{{1,2}}" for s in ("-", "/", r"\."))
    day_first = "|".join(rf"[0-9]{{1,2}}{s}[0-9]{{1,2}}{s}[0-9]{{4}}" for s in ("-", "/", r"\."))
    iso = (
        f"case when regexp_full_match({d}, {sql_string(f'(?:{year_first}){time}')}) then try_strptime("
        rf"regexp_replace({d}, '^([0-9]{{4}}).([0-9]{{1,2}}).([0-9]{{1,2}}).*$', '\1-\2-\3'), '%Y-%m-%d')::date end"
    )
    french = (
        f"case when regexp_full_match({d}, {sql_string(f'(?:{day_first}){time}')}) then try_strptime("
        rf"regexp_replace({d}, '^([0-9]{{1,2}}).([0-9]{{1,2}}).([0-9]{{4}}).*$', '\1/\2/\3'), '%d/%m/%Y')::date end"
    )
    # A five-digit number in a date column is an Excel serial day pasted as text.
    serial = (
        f"case when regexp_full_match({d}, '[0-9]{{5}}') then "
        f"date '1970-01-01' + (cast({d} as integer) - {EXCEL_EPOCH_OFFSET}) end"
    )
    iso_month = f"case when regexp_full_match({d}, '[0-9]{{4}}-[0-9]{{2}}') then try_strptime({d}, '%Y-%m')::date end"
    french_month = (
        f"case when regexp_full_match({d}, '[0-9]{{2}}/[0-9]{{4}}') then try_strptime({d}, '%m/%Y')::date end"
    )
    # The common form first: an ISO date (a valid one casts; 2025-02-30 does not).
    iso_plain = f"regexp_full_match({d}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}')"
    return (
        f"case when {iso_plain} then try_cast({d} as date) "
        f"else coalesce({serial}, {iso}, {french}, {iso_month}, {french_month}) end"
    )


def is_numeric(source_type: str) -> bool:
    return source_type in NUMERIC_TYPES or source_type.startswith("DECIMAL")


def typed_layers(
    field: ContractField, column: str, source_type: str, decimal_comma: bool, name: str, stripped: str | None = None
) -> list[str]:
    """SQL converting ``column`` (a quoted column of ``source_type``) to the contract type of ``field``,
    in layers: each expression may use the previous layer's value as ``{name}_<i>`` (one projection
    each, so that no text is cleaned or parsed twice). The last is the typed value. ``stripped``: a
    column already holding ``strip_sql`` of the text, when the caller computed it."""
    kind = field.type
    clean = f"nullif({stripped}, '')" if stripped is not None else clean_text_sql(column, source_type)
    numeric = is_numeric(source_type)
    if kind == "string":
        if source_type in FLOAT_TYPES:
            # An identifier or a code typed as a number in a spreadsheet: 50.0 -> "50".
            return [
                f"case when {column} = floor({column}) and abs({column}) < 9.2e18 "
                f"then cast(cast({column} as bigint) as varchar) else cast({column} as varchar) end"
            ]
        return [clean]
    if kind in ("integer", "decimal"):
        if numeric or source_type == "BOOLEAN":
            layers = [f"cast({column} as double)"]
        else:
            layers = [
                stripped_number_sql(clean),
                number_text_sql(f"{name}_0", decimal_comma),
                float_from_text_sql(f"{name}_1"),
            ]
        if kind == "integer":
            last = f"{name}_{len(layers) - 1}"
            layers.append(f"case when {last} = floor({last}) then try_cast({last} as bigint) end")
        return layers
    if kind in ("date", "month"):
        if source_type == "DATE":
            layers = [column]
        elif source_type.startswith("TIMESTAMP"):
            layers = [f"cast({column} as date)"]
        elif numeric:
            layers = [
                f"case when abs({column}) < 3e6 then "
                f"date '1970-01-01' + (cast(trunc({column}) as integer) - {EXCEL_EPOCH_OFFSET}) end"
            ]
        else:
            layers = [clean, date_from_text_sql(f"{name}_0")]
        if kind == "month":
            layers.append(f"cast(date_trunc('month', {name}_{len(layers) - 1}) as date)")
        return layers
    if kind == "boolean":
        if source_type == "BOOLEAN":
            return [column]
        words = f"cast(try_cast({column} as bigint) as varchar)" if numeric else f"lower({clean})"
        return [
            words,
            f"case when {name}_0 in ({', '.join(map(sql_string, TRUE_WORDS))}) then true "
            f"when {name}_0 in ({', '.join(map(sql_string, FALSE_WORDS))}) then false end",
        ]
    raise ValueError(f"unknown contract type {kind!r}")
