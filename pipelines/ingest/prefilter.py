"""Which identifier and code values could hold a direct identifier, decided in the engine.

The privacy guard (``privacy.find_identifiers``) is the definition, in Python, with python-stdnum
and phonenumbers: about 100 µs a value. A million persons bring some twenty million identifiers
(``AG001-V00431110``, ``LK00000001``) and the guard cannot see them all. This module clears, in
SQL and without leaving the engine, every value the guard could not flag, and sends it only the
rest (on distinct values). It is a *superset* test, never a decision: the guard still decides.

It applies to the contract's identifier and code fields (``privacy.STRICT_KINDS``) when a value is
plain ASCII (identifiers and codes nearly always are); other values, and free text, go through the
guard's own vectorised prefilter (``privacy.identifier_hits``), whose Unicode rules RE2 does not
have. For an ASCII value the guard's normalisation reduces to folding runs of white space and
reading a lone ``O``, ``o``, ``I``, ``l`` standing among digits as ``0`` or ``1`` (done here the
same way, in two passes so that neighbours are both read). A value is a candidate when:

* it has a ``+`` (an international number), something e-mail-like, numbers spelt out in words, or
  the letters-and-digits shape of an IBAN, an Italian tax code or a Spanish DNI/NIE
  (``DIRECT_PATTERN``); or
* its digits, read as the guard and phonenumbers' matcher can read them, could make a number with
  a structure (``shape_may_hold_identifier``). Digits form groups; groups separated by a few
  characters that are not letters (``x`` included: phonenumbers reads it as punctuation) form a run.
  Every number the guard finds is a run of whole groups (its windows start and end on groups,
  except inside one group of 13 characters or more), of a length its kind requires: 13 or 15
  characters for a NIR, 13 for the French tax and Swiss numbers, 11 for Belgium's, 10 starting
  with 0 for a French phone, 11 or 12 starting with 33 (France's code without its ``+``), or
  ``00`` then a country code and a national number of a length that country has (phonenumbers'
  own metadata, with room for a national prefix).

The shape of a value (``shape_sql``) keeps exactly what that test needs: each group's first five
characters and its length, and which groups join. Values of one shape get one answer, so the
test runs in Python once per distinct shape (a few thousand for millions of identifiers).
``tests/test_privacy_guard.py`` checks against the guard that no value it flags is ever cleared.
"""

from __future__ import annotations

import re
from functools import cache

from pipelines.ingest.privacy import _EMAIL_HINT, _NUMBER_WORDS

ASCII_SQL = "strlen({v}) = length({v})"
"""A value whose bytes are its characters: plain ASCII (RE2's ASCII classes are then exact)."""

FOLDED_SQL = r"regexp_replace({v}, '[\t\x0b\x0c\r ]+', ' ', 'g')"
"""White space folded as ``privacy.normalise_text`` folds it (line breaks kept) for ASCII text."""

LOOKALIKES_SQL = (
    r"regexp_replace(regexp_replace(regexp_replace(regexp_replace({v}, "
    r"'(^|[^A-Za-z])[Oo]([^A-Za-z]|$)', '\10\2', 'g'), '(^|[^A-Za-z])[Oo]([^A-Za-z]|$)', '\10\2', 'g'), "
    r"'(^|[^A-Za-z])[Il]([^A-Za-z]|$)', '\11\2', 'g'), '(^|[^A-Za-z])[Il]([^A-Za-z]|$)', '\11\2', 'g')"
)
"""A lone O, o, I or l (no letter on either side) read as a digit; reading one the guard would not
(no digit near it) only adds a group, so the test stays a superset."""

_DIGITISH = "[0-9OoIl]"
DIRECT_PATTERN = "|".join(
    f"(?:{alternative})"
    for alternative in [
        r"\+",
        _EMAIL_HINT.pattern,
        _NUMBER_WORDS,
        rf"(?i:[a-z]{{6}}[0-9lmnpqrstuvoi]{{2}}[a-z][0-9lmnpqrstuvoi]{{2}}[a-z][0-9lmnpqrstuvoi]{{3}}[a-z])",
        rf"(?i:[xyz]{_DIGITISH}{{7}})",
        rf"{_DIGITISH}{{8}} ?-?[A-Za-z]",
        rf"(?i:[a-z]{{2}}[0-9oil]{{2}}(?:[ .\-_/]?[a-z0-9]){{11}})",
    ]
)
"""Identifiers with letters (e-mails, IBANs, Italian and Spanish numbers), an international
number's ``+``, or numbers in words: always sent to the guard."""

DIGITS_GATE = rf"{_DIGITISH}(?:[^A-WYZa-wyz,;:|]{{0,7}}{_DIGITISH}){{7,}}"
"""Eight digits or more in one run: below, no number with a structure fits."""

_GROUP = "(?:2[ABab]|[0-9])+"
"""A group: digits, and Corsica's 2A/2B inside a NIR."""
JOIN = "~"
BREAK = "/"


def candidates_sql(values_sql: str) -> str:
    """For each value of ``values_sql`` (a query with one text column ``v``): whether it is plain ASCII,
    whether ``DIRECT_PATTERN`` finds something in it, and its shape (``shape_may_hold_identifier``)
    when it has eight digits or more in a run (else null). Each step is one column of one projection,
    so no value is scanned twice for the same thing."""
    folded = FOLDED_SQL.format(v="v")
    lookalikes = f"case when regexp_matches(f, '[OoIl]') then {LOOKALIKES_SQL.format(v='f')} else f end"
    group = _sql_text(_GROUP)
    separator = (
        "case when i >= len(groups) then '' "
        f"when length(separators[i + 1]) <= 7 and regexp_full_match(separators[i + 1], '[^A-WYZa-wyz,;:|]+') "
        f"then '{JOIN}' else '{BREAK}' end"
    )
    describe = "case when length(g) <= 5 then g else left(g, 5) || '#' || length(g) end"
    shape = f"array_to_string(list_transform(groups, lambda g, i: ({describe}) || ({separator})), '')"
    return (
        f"select v, ascii, direct, case when gate then {shape} end as shape from ("
        f"select v, ascii, direct, gate, regexp_extract_all(t, '{group}') as groups, "
        f"string_split_regex(t, '{group}') as separators from ("
        f"select v, ascii, direct, gate, case when gate then {lookalikes} end as t from ("
        f"select v, {ASCII_SQL.format(v='v')} as ascii, regexp_matches(f, '{_sql_text(DIRECT_PATTERN)}') as direct, "
        f"regexp_matches(f, '{_sql_text(DIGITS_GATE)}') as gate, f from ("
        f"select v, {folded} as f from ({values_sql})))))"
    )


def _sql_text(pattern: str) -> str:
    return pattern.replace("'", "''")


@cache
def _national_lengths() -> dict[str, frozenset[int]]:
    """Every country calling code with the national number lengths phonenumbers knows for it (all
    its regions); an empty set means any length."""
    from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata

    lengths: dict[str, frozenset[int]] = {}
    for code, regions in COUNTRY_CODE_TO_REGION_CODE.items():
        found: set[int] = set()
        unknown = False
        for region in regions:
            metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
            if metadata is None or metadata.general_desc is None:
                unknown = True
                continue
            # A valid number's national number has one of these lengths (``is_valid_number`` checks the
            # general description first); local-only lengths are possible, never valid.
            possible = set(metadata.general_desc.possible_length or ())
            unknown = unknown or not possible
            found |= possible
        lengths[str(code)] = frozenset() if unknown else frozenset(found)
    return lengths


NATIONAL_PREFIX_ROOM = 2
"""A foreign number may keep its national prefix after the country code (``0044 (0)20...``)."""


def _international(digits: str, length: int) -> bool:
    """Whether ``00`` + a country code + a national number could make ``length`` digits in all, the
    sequence's known first digits being ``digits`` (five at most: beyond, anything may follow)."""
    rest = length - 2
    for code, lengths in _national_lengths().items():
        known = digits[2 : 2 + len(code)]
        if not code.startswith(known) if len(known) < len(code) else known != code:
            continue
        national = rest - len(code)
        if national < 1:
            continue
        if not lengths or any(national - k in lengths for k in range(NATIONAL_PREFIX_ROOM + 1)):
            return True
    return False


_GROUP_DESCRIPTION = re.compile(r"^([0-9ABab]+)(?:#(\d+))?$")


@cache
def shape_may_hold_identifier(shape: str) -> bool:
    """Whether a value of this shape (``shape_sql``) could hold a number the guard finds."""
    for run in shape.split(BREAK):
        groups: list[tuple[str, int]] = []
        for description in filter(None, run.split(JOIN)):
            match = _GROUP_DESCRIPTION.match(description)
            if match is None:
                return True  # not a shape this function wrote: let the guard decide
            lead, length = match.group(1), int(match.group(2) or len(match.group(1)))
            if length >= 13 or not lead.isdigit():
                return True  # a NIR inside one long group; Corsica's 2A/2B
            groups.append((lead, length))
        for start in range(len(groups)):
            digits, length, complete = "", 0, True
            for lead, size in groups[start:]:
                if complete:
                    digits += lead
                    complete = size == len(lead)
                length += size
                if _number_fits(digits, length):
                    return True
    return False


def _number_fits(digits: str, length: int) -> bool:
    """Whether a sequence of whole groups of ``length`` digits, starting with ``digits``, could be a
    NIR, a tax or national number, or a phone number as the guard or phonenumbers reads one."""
    if length in (11, 13, 15):
        return True
    if length == 10 and digits[:1] == "0":
        return True
    if length == 12 and "33".startswith(digits[:2]):
        return True
    return "00".startswith(digits[:2]) and length >= 4 and _international(digits, length)
