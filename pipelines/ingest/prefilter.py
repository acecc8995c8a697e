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
  ``00`` then a country code and a national number of a length that country has, whose first
  digits one of its types the guard reports can start with (phonenumbers' own metadata, with room
  for a national prefix; for the few countries whose prefix rule rewrites numbers, any number the
  rule can make as long as the shortest foreign number the guard reports).

The shape of a value (``shape_sql``) keeps exactly what that test needs: each group's first five
characters and its length, and which groups join. Values of one shape get one answer, so the
test runs in Python once per distinct shape (a few thousand for millions of identifiers).
``tests/test_privacy_guard.py`` checks against the guard that no value it flags is ever cleared.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from re import _constants, _parser  # type: ignore[attr-defined]
from typing import Any

from pipelines.ingest.privacy import _EMAIL_HINT, _NUMBER_WORDS, SHORTEST_FOREIGN_NUMBER

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
        r"(?i:[a-z]{6}[0-9lmnpqrstuvoi]{2}[a-z][0-9lmnpqrstuvoi]{2}[a-z][0-9lmnpqrstuvoi]{3}[a-z])",
        rf"(?i:[xyz]{_DIGITISH}{{7}})",
        rf"{_DIGITISH}{{8}} ?-?[A-Za-z]",
        r"(?i:[a-z]{2}[0-9oil]{2}(?:[ .\-_/]?[a-z0-9]){11})",
    ]
)
"""Identifiers with letters (e-mails, IBANs, Italian and Spanish numbers), an international
number's ``+``, or numbers in words: always sent to the guard."""

DIGITS_GATE = rf"{_DIGITISH}(?:[^C-WYZc-wyz,;:|]{{0,7}}{_DIGITISH}){{7,}}"
"""Eight digits or more in one run: below, no number with a structure fits. A and B may join a run:
Corsica's départements 2A and 2B sit inside a NIR (``100012A000000`` is two runs of six otherwise)."""

_GROUP = "(?:2[ABab]|[0-9])+"
"""A group: digits, and Corsica's 2A/2B inside a NIR."""
JOIN = "~"
BREAK = "/"
LEAD = 7
"""Digits of a group a shape keeps: enough for ``00``, a country code and the national number's start."""


def candidates_sql(values_sql: str) -> str:
    """For each value of ``values_sql`` (a query with one text column ``v``): whether it is plain ASCII,
    whether ``DIRECT_PATTERN`` finds something in it, and its shape (``shape_may_hold_identifier``)
    when it has eight digits or more in a run (else null). Each step is one column of one projection,
    so no value is scanned twice for the same thing."""
    folded = FOLDED_SQL.format(v="v")
    lone = "(^|[^A-Za-z])[OoIl]([^A-Za-z]|$)"
    lookalikes = f"case when regexp_matches(f, '{lone}') then {LOOKALIKES_SQL.format(v='f')} else f end"
    group = _sql_text(_GROUP)
    separator = (
        "case when i >= len(groups) then '' "
        f"when length(separators[i + 1]) <= 7 and regexp_full_match(separators[i + 1], '[^A-WYZa-wyz,;:|]+') "
        f"then '{JOIN}' else '{BREAK}' end"
    )
    describe = f"case when length(g) <= {LEAD} then g else left(g, {LEAD}) || '#' || length(g) end"
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


@dataclass(frozen=True)
class _Region:
    lengths: frozenset[int]
    """Lengths of a valid national number (``is_valid_number`` checks the general description first;
    local-only lengths are possible, never valid)."""
    pattern: str
    stripped: tuple[tuple[int, frozenset[str] | None], ...]
    """What the parser may strip after the country code, by length: a national prefix or a carrier code
    (``0044 (0)20...``); None: any digits of that length."""
    personal: tuple[tuple[frozenset[int], str], ...]
    """Lengths and pattern of each kind of number the guard reports (``PERSONAL_TYPES``): a valid number
    has a type, and the guard leaves services' lines (free, shared-cost, premium-rate, UAN) out, so a
    number it reports matches one of these as well as the general description."""


PERSONAL_TYPES = ("fixed_line", "mobile", "voip", "personal_number", "pager", "voicemail")
"""phonenumbers' number types the guard reports (``privacy._SERVICE_LINES`` are the others)."""


def _personal(metadata: Any, general_lengths: frozenset[int]) -> tuple[tuple[frozenset[int], str], ...]:
    """Each reported type's lengths (the general ones when it names none: its length is then not checked)
    and pattern; a type without a pattern matches nothing."""
    kinds = []
    for name in PERSONAL_TYPES:
        desc = getattr(metadata, name, None)
        if desc is None or not desc.national_number_pattern:
            continue
        lengths = frozenset(desc.possible_length) if desc.possible_length else general_lengths
        kinds.append((lengths, desc.national_number_pattern))
    return tuple(kinds)


@dataclass(frozen=True)
class _Rewritten:
    """A country whose national prefix rule rewrites the digits after its code (Gabon's ``0(11\\d{6}|...)``
    to ``\\1``, Madagascar's ``([24-9]\\d{6})$`` to ``20\\1``): nothing is known of the rewritten number
    but its length, at most the digits written plus ``added`` (the rule's own digits: each of its groups,
    used once, is a part of what was written)."""

    added: int


def _rewriting(transform_rule: str) -> _Rewritten | None:
    """What a ``national_prefix_transform_rule`` can add to a number's length. phonenumbers replaces the
    prefix it matched at the number's start with the rule, whose group is a part of that prefix, so the
    number grows by the rule's own digits at most. None: not read here (a group used twice, anything but
    digits and group references)."""
    references = re.findall(r"\\\d|\$\d", transform_rule)
    literal = re.sub(r"\\\d|\$\d", "", transform_rule)
    if len(references) > 1 or (literal and not literal.isdigit()):
        return None
    return _Rewritten(len(literal))


@cache
def _regions() -> dict[str, list[_Region] | _Rewritten | None]:
    """Every country calling code with what phonenumbers knows of its regions' valid numbers; ``_Rewritten``:
    a prefix rule that rewrites numbers (only their length is bounded); None: any number (nothing known)."""
    from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, region_code_for_country_code

    known: dict[str, list[_Region] | _Rewritten | None] = {}
    for code, regions in COUNTRY_CODE_TO_REGION_CODE.items():
        main = PhoneMetadata.metadata_for_region_or_calling_code(code, region_code_for_country_code(code))
        prefix = main.national_prefix_for_parsing if main is not None else None
        identity = re.match(r"\(([^()]*)\)\$\|(.*)$", prefix or "")
        if main is not None and main.national_prefix_transform_rule == "\\1" and identity:
            prefix = identity.group(2)  # the rewrite gives the number back as it was: only the rest strips
        elif main is None:
            known[str(code)] = None  # nothing known: anything goes
            continue
        elif main.national_prefix_transform_rule is not None:
            # The parser may rewrite the number: anything goes, but its length.
            known[str(code)] = _rewriting(main.national_prefix_transform_rule)
            continue
        stripped = _strippable(prefix)
        found: list[_Region] = []
        complete = True
        for region in regions:
            metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
            general = metadata.general_desc if metadata is not None else None
            if general is None or not general.possible_length or not general.national_number_pattern:
                complete = False
                break
            lengths = frozenset(general.possible_length)
            found.append(_Region(lengths, general.national_number_pattern, stripped, _personal(metadata, lengths)))
        known[str(code)] = found if complete else None
    return known


LONGEST_CODE = 3
"""Digits of the longest country calling code (ITU-T E.164)."""


@cache
def _codes_after(known: str) -> tuple[str, ...]:
    """The calling codes a sequence ``00`` + ``known`` + ... can hold (``known``: the digits after ``00``
    that are known, ``LONGEST_CODE`` at most): each code whose own digits agree with those known. Whether
    a code fits depends on these digits only, so ``_international`` looks at a few codes, not all of
    them: at 30,000 persons it is called for tens of thousands of distinct sequences."""
    return tuple(
        code
        for code in _regions()
        if (code.startswith(known) if len(known) < len(code) else known[: len(code)] == code)
    )


@cache
def _international(digits: str, length: int) -> bool:
    """Whether ``00`` + a country code + a national number could make ``length`` digits in all, the
    sequence's known first digits being ``digits`` (seven at most: beyond, anything may follow).

    A country whose prefix rule rewrites numbers counts when the rewritten number can be as long as the
    shortest foreign number the guard reports (``privacy.SHORTEST_FOREIGN_NUMBER``): ``AG006-V00241001``
    reads as Gabon (241) and a national number of three digits, which no rule of Gabon's lengthens."""
    known_regions = _regions()
    for code in _codes_after(digits[2 : 2 + LONGEST_CODE]):
        regions = known_regions[code]
        written = length - 2 - len(code)
        if written < 1:
            continue
        if regions is None:
            return True
        if isinstance(regions, _Rewritten):
            # The guard reports no foreign number shorter than SHORTEST_FOREIGN_NUMBER (France's, any).
            if code == "33" or written + regions.added >= SHORTEST_FOREIGN_NUMBER:
                return True
            continue
        after = digits[2 + len(code) :]
        for region in regions:
            for size, texts in region.stripped:
                if written - size not in region.lengths:
                    continue
                if texts is not None and not any(t.startswith(after[:size]) for t in texts):
                    continue
                start = after[size:][:3]
                if start and not _can_start(region.pattern, start):
                    continue
                if any(
                    written - size in lengths and (not start or _can_start(pattern, start))
                    for lengths, pattern in region.personal
                ):
                    return True
    return False


def _strippable(prefix: str | None) -> tuple[tuple[int, frozenset[str] | None], ...]:
    """The digits ``national_prefix_for_parsing`` can strip, by length (nothing stripped always counts)."""
    if not prefix:
        return ((0, frozenset({""})),)
    widest = min(_parser.parse(prefix).getwidth()[1], 8)
    found = _sequence(list(_parser.parse(prefix)), widest + 1)
    by_size: list[tuple[int, frozenset[str] | None]] = [(0, frozenset({""}))]
    for size in range(1, widest + 1):
        texts = None if found is None else frozenset(text for text, _ in found if len(text) == size)
        if texts is None or texts:
            by_size.append((size, texts))
    return tuple(by_size)


@cache
def _can_start(pattern: str, start: str) -> bool:
    """Whether a number matching ``pattern`` (phonenumbers metadata) can start with ``start``; true when
    the pattern uses something ``_starts`` does not read."""
    starts = _starts(pattern, len(start))
    return starts is None or start in starts


@cache
def _starts(pattern: str, n: int) -> frozenset[str] | None:
    """The first ``n`` characters of every string ``pattern`` matches (None: a construct not read here)."""
    found = _sequence(list(_parser.parse(pattern)), n)
    return None if found is None else frozenset(s[:n] for s, _ in found if len(s) >= n)


_Prefixes = set[tuple[str, bool]]
"""Beginnings of matches, cut at the length wanted, each with whether its match may go on."""


def _sequence(items: list[Any], n: int) -> _Prefixes | None:
    results: _Prefixes = {("", True)}
    for item in items:
        following: _Prefixes = set()
        for text, going in results:
            if not going or len(text) >= n:
                following.add((text, going))
                continue
            parts = _item(item, n - len(text))
            if parts is None:
                return None
            following |= {(text + part, more) for part, more in parts}
        results = following
    return results


def _item(item: tuple[Any, Any], n: int) -> _Prefixes | None:
    op, value = item
    if op is _constants.LITERAL:
        return {(chr(value), True)}
    if op is _constants.IN:
        chars = _characters(value)
        return None if chars is None else {(c, True) for c in chars}
    if op is _constants.SUBPATTERN:
        return _sequence(list(value[-1]), n)
    if op is _constants.BRANCH:
        found: _Prefixes = set()
        for alternative in value[1]:
            part = _sequence(list(alternative), n)
            if part is None:
                return None
            found |= part
        return found
    if op in (_constants.MAX_REPEAT, _constants.MIN_REPEAT):
        least, most, body = value
        found = {("", True)} if least == 0 else set()
        current: _Prefixes = {("", True)}
        for count in range(1, min(most, n + least) + 1):
            following: _Prefixes = set()
            for text, going in current:
                if not going or len(text) >= n:
                    following.add((text, going))
                    continue
                parts = _sequence(list(body), n - len(text))
                if parts is None:
                    return None
                following |= {(text + part, more) for part, more in parts}
            current = following
            # A beginning as long as wanted is one whatever repetitions must follow it.
            found |= current if count >= least else {(text, going) for text, going in current if len(text) >= n}
            if all(len(text) >= n or not going for text, going in current):
                break
        return found
    if op is _constants.AT:
        return {("", True)}
    return None


def _characters(items: list[tuple[Any, Any]]) -> set[str] | None:
    chars: set[str] = set()
    negate = False
    for op, value in items:
        if op is _constants.NEGATE:
            negate = True
        elif op is _constants.LITERAL:
            chars.add(chr(value))
        elif op is _constants.RANGE:
            chars |= {chr(c) for c in range(value[0], value[1] + 1)}
        elif op is _constants.CATEGORY and value is _constants.CATEGORY_DIGIT:
            chars |= set("0123456789")
        else:
            return None
    return set("0123456789") - chars if negate else chars


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
