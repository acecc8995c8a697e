"""The privacy guard: find what looks like a direct identifier before anything is stored.

Column names are matched against a list of identifier names (French and English). Values are
first **normalised** (``normalise_text``: Unicode compatibility forms, invisible characters,
dashes and spaces of every kind, letters that stand for digits inside numbers), then matched:

* everywhere (``STRICT_KINDS``): a French social-security number (NIR, 15 characters with a
  valid key, or its 13-character body; temporary numbers starting with 7 or 8 included) however
  it is spaced, dotted or glued to words; telephone numbers, French or international, found by
  ``phonenumbers``' matcher; e-mail addresses, obfuscated ones included (``(at)``, ``[dot]``,
  ``arobase``); IBANs; the French tax number; the national numbers of neighbouring countries
  (Belgium, Switzerland, Italy, Spain) that an agency near a border might send by mistake.
  Every number with a check digit is validated with ``python-stdnum``;
* in free text and in columns outside the contract (``FREE_TEXT_KINDS``), also: street
  addresses, five-digit postcodes, birth dates (``née le 12/03/1941``, ``né le 3 mars``, or any
  full date before 1976) and surnames after a title (``Mme Martin``).

Ordinary care notes (times, durations, amounts, hours, dates of events, GIR grades) are not
identifiers and pass. ``find_identifiers`` is the one definition (a pure function on one
string); ``identifier_hits`` runs it on a table, sending only the rows a vectorised prefilter
cannot clear. Nothing here ever logs or returns a value: only which kinds, rows and columns.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from functools import cache

import phonenumbers
import polars as pl
from stdnum import iban
from stdnum.be import nn as belgian_nn
from stdnum.ch import ssn as swiss_avs
from stdnum.es import dni as spanish_dni
from stdnum.es import nie as spanish_nie
from stdnum.fr import nif as french_tax_number
from stdnum.fr import nir
from stdnum.it import codicefiscale

_IDENTIFIER_NAMES = re.compile(
    r"^(?:nom|noms|prenom|prenoms|nom_de_naissance|nom_d_usage|nom_usage|name|names|first_?name|last_?name|"
    r"surname|given_?name|family_?name|full_?name|patient|beneficiaire_nom|"
    r"nir|ssn|nss|secu|securite_sociale|numero_secu|num_secu|n_secu|no_secu|numero_ss|insee|"
    r"tel|telephone|phone|phone_number|mobile|portable|fax|"
    r"e?mail|courriel|adresse_mail|"
    r"iban|rib|bic|"
    r"adresse|address|adresse_postale|street|rue|voie|"
    r"code_postal|codepostal|postcode|post_code|zip|zip_code|cp|"
    r"commune|ville|city|town|"
    r"date_de_naissance|date_naissance|naissance|birth_?date|date_of_birth|dob|ddn)$"
)

STRICT_KINDS = ("nir", "phone", "email", "iban", "tax_number", "foreign_national_number")
FREE_TEXT_KINDS = (*STRICT_KINDS, "street_address", "postcode", "birth_date", "titled_name")


def _normalise_name(name: str) -> str:
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


def identifier_columns(columns: Sequence[str]) -> list[str]:
    """Columns whose name says they hold a direct identifier."""
    return [c for c in columns if _IDENTIFIER_NAMES.match(_normalise_name(c))]


# --- normalisation ---------------------------------------------------------------------------

INVISIBLE = "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]"
"""Characters that show nothing but split a number for a naive pattern (soft hyphen, zero-width...)."""
DASHES = "[\u2010-\u2015\u2043\u2212\u2e3a\u2e3b\ufe58\ufe63\uff0d]"
WHITE_SPACE = "[\t\n\x0b\x0c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
"""Unicode's White_Space, spelt out: Python's and Polars' ``\\s`` disagree on \\x1c-\\x1f."""
SPACES = WHITE_SPACE.replace("\n", "") + "+"
"""White space but line breaks, where a run becomes one space."""
_DIGIT_LOOKALIKES = re.compile(r"(?<=\d)[Oo](?=[ .\-]?\d)|(?<=\d[ .\-])[Oo](?=\d)|(?<=\d)[Il](?=\d)")


def normalise_text(text: str) -> str:
    """The form every value is matched in: NFKC (full-width digits, ligatures, ＠), no invisible
    characters, one kind of dash and of space, and O/I/l read as 0/1 between digits."""
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(INVISIBLE, "", text)
    text = re.sub(DASHES, "-", text)
    text = re.sub(SPACES, " ", text)
    return _DIGIT_LOOKALIKES.sub(lambda m: "0" if m.group() in "Oo" else "1", text)


def normalised_expression(expr: pl.Expr) -> pl.Expr:
    """``normalise_text`` as a vectorised expression (without the look-alike digits: the
    prefilter below does not need them)."""
    return (
        expr.cast(pl.String)
        .str.normalize("NFKC")
        .str.replace_all(INVISIBLE, "")
        .str.replace_all(DASHES, "-")
        .str.replace_all(SPACES, " ")
    )


# --- numbers with a structure or a check digit -------------------------------------------------

_SEPARATOR = r"[ .\-_/]"
_DIGIT_RUN = re.compile(rf"[0-9](?:{_SEPARATOR}{{0,3}}(?:[0-9]|(?<=2)[ABab]))+")
"""Digits joined by at most three separators (``1.75.08``, ``1 - 75 - 08``); ``2A``/``2B`` (Corsica)."""


def _windows(run: str) -> Iterator[str]:
    """Compact candidates in a run of digit groups: whole groups from one group's start to another's
    end, and every 8 to 15 consecutive characters inside a long group (numbers glued together)."""
    groups = [g for g in re.split(f"{_SEPARATOR}+", run) if g]
    for start in range(len(groups)):
        text = ""
        for group in groups[start:]:
            text += group
            if len(text) > 16:
                break
            yield text
    for group in groups:
        if 8 < len(group) <= LONGEST_GLUED_GROUP:
            for size in range(8, 16):
                for offset in range(len(group) - size + 1):
                    yield group[offset : offset + size]


LONGEST_GLUED_GROUP = 256
"""Numbers glued together are searched inside groups up to this length (a longer run of digits is
no text a person wrote: its row fails on length or type first)."""
MAX_SCANNED_CHARS = 10_000
"""Longer values are not scanned: they are quarantined as ``field_too_long`` before the guard's turn."""

_NIR_BODY = re.compile(r"^[1278]\d{2}(?:0[1-9]|1[0-2]|[2-4]\d|[5-9]\d)(?:\d{2}|2[AB])\d{6}$")
"""Sex (1, 2; 7, 8 for a temporary number), year, month (20-42 and 50-99 when unknown), place,
serial. Without its key, 13 such characters are still a NIR."""


def _is_nir(candidate: str) -> bool:
    candidate = candidate.upper()
    if len(candidate) == 15:
        return candidate[0] in "1278" and nir.is_valid(candidate)
    return len(candidate) == 13 and _NIR_BODY.match(candidate) is not None


def _is_foreign_national_number(candidate: str) -> bool:
    """Belgium's national register number (11 digits) or Switzerland's AVS number (13, from 756)."""
    if len(candidate) == 11:
        return belgian_nn.is_valid(candidate)
    return len(candidate) == 13 and candidate.startswith("756") and swiss_avs.is_valid(candidate)


def _number_kinds(text: str) -> set[str]:
    kinds: set[str] = set()
    for match in _DIGIT_RUN.finditer(text):
        for candidate in _windows(match.group()):
            if _is_nir(candidate):
                kinds.add("nir")
            elif len(candidate) == 13 and candidate[0] in "0123" and french_tax_number.is_valid(candidate):
                kinds.add("tax_number")
            elif _is_foreign_national_number(candidate):
                kinds.add("foreign_national_number")
    return kinds


_IBAN = re.compile(r"(?<![A-Z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}")
_OMOCODE_DIGIT = "[0-9LMNPQRSTUV]"
_CODICE_FISCALE = re.compile(
    rf"(?<![A-Z0-9])[A-Z]{{6}}{_OMOCODE_DIGIT}{{2}}[A-Z]{_OMOCODE_DIGIT}{{2}}[A-Z]{_OMOCODE_DIGIT}{{3}}[A-Z]"
)
_SPANISH_ID = re.compile(r"(?<![A-Z0-9])(?:\d{8}|[XYZ]\d{7}) ?-?[A-Z](?![A-Z0-9])")


def _lettered_kinds(text: str) -> set[str]:
    upper = text.upper()
    kinds: set[str] = set()
    for match in _IBAN.finditer(upper):
        compact = match.group().replace(" ", "")
        if any(iban.is_valid(compact[:n]) for n in range(len(compact), 14, -1)):
            kinds.add("iban")
    if any(codicefiscale.is_valid(m.group()) for m in _CODICE_FISCALE.finditer(upper)):
        kinds.add("foreign_national_number")
    for match in _SPANISH_ID.finditer(upper):
        compact = match.group().replace(" ", "").replace("-", "")
        if spanish_dni.is_valid(compact) or spanish_nie.is_valid(compact):
            kinds.add("foreign_national_number")
    return kinds


# --- phones and e-mails ----------------------------------------------------------------------

_LETTER_DIGIT = re.compile(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])")


_PHONE_CANDIDATE = re.compile(r"\+?\(?\d(?:[\s().\-/]{0,3}\d){7,}")
_DATE_LIKE = re.compile(r"\d{1,2}\s?[/.\-]\s?\d{1,2}\s?[/.\-]\s?\d{2,4}")


def _has_phone(text: str) -> bool:
    """``phonenumbers``' matcher (French numbers in any form, any international number), run only
    around runs of eight digits or more that are not a date: it costs a hundred times a regex."""
    # The matcher refuses a number glued to letters (``tel0698765432``): unglue them first.
    spaced = _LETTER_DIGIT.sub(" ", text)
    for candidate in _PHONE_CANDIDATE.finditer(spaced):
        if _DATE_LIKE.fullmatch(candidate.group()):
            continue
        window = spaced[max(0, candidate.start() - 4) : candidate.end() + 1]
        if phonenumbers.PhoneNumberMatcher(window, "FR", leniency=phonenumbers.Leniency.VALID).has_next():
            return True
    return False


_AT = r"(?:@|\s*[(\[{<]\s*(?:at|arobase)\s*[)\]}>]\s*|\s+arobase\s+)"
_DOT = r"(?:\.|\s*[(\[{<]\s*(?:dot|point)\s*[)\]}>]\s*|\s+point\s+)"
_EMAIL = re.compile(rf"(?i)[\w.%+\-]+{_AT}[\w\-]+(?:{_DOT}[\w\-]+)*")

# Coarse patterns for scripts that cannot call ``find_identifiers`` (the pandas peer of the
# benchmarks): they match plain forms only, and an NIR without checking its key.
EMAIL = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}"
PHONE = r"(?:\+33\s?|0033\s?|\b0)[1-9](?:[\s.\-]?\d{2}){4}\b"
NIR_CANDIDATE = r"\b[12]\s?\d{2}\s?(?:0[1-9]|1[0-2]|[2-9]\d)\s?(?:\d{2}|2[ABab])\s?\d{3}\s?\d{3}\s?\d{2}\b"


# --- free text only ----------------------------------------------------------------------------

_STREET_WORDS = (
    r"(?:rue|avenue|av\.|bd|boulevard|all[ée]e|chemin|chem\.|impasse|pl\.|rte|quai|square|sq\.|lotissement|"
    r"lot\.|r[ée]sidence|chauss[ée]e|faubourg|fbg|sentier|hameau|lieu-dit|street|st\.|road|rd\.|lane)"
)
_AMBIGUOUS_STREET_WORDS = r"(?:place|passage|cours|route|villa|cit[ée])"
"""Also ordinary words ("2 passages", "mise en place"): a street only before a capitalised name."""
_NUMBER_IN_STREET = r"\b\d{1,4}\s?(?:bis|ter|quater)?\s*,?\s*"
_STREET = re.compile(
    rf"(?i:{_NUMBER_IN_STREET}{_STREET_WORDS}\s+\S+)"
    rf"|(?i:{_NUMBER_IN_STREET}{_AMBIGUOUS_STREET_WORDS})\s+(?:(?:de|du|des|de la|d'|l')\s*)?[A-ZÀ-ÖØ-Þ]"
)
_NOT_A_POSTCODE_AFTER = (
    r"\s*(?:€|eur\b|euros?\b|e\b|h\b|heures?\b|hrs?\b|min\b|minutes?\b|km\b|m\b|m2|m²|%|ans?\b|jours?\b|j\b|"
    r"mois\b|semaines?\b|fois\b|pts?\b|points?\b|kg\b|g\b|mg\b|ml\b|l\b|passages?\b|appels?\b|visites?\b)"
)
_POSTCODE = re.compile(
    rf"(?i)(?<![\d.,€$])(?<!€ )(?:0[1-9]|[1-8]\d|9[0-8])\d{{3}}(?![\d])(?!,\d)(?!\.\d)(?!{_NOT_A_POSTCODE_AFTER})"
)
_MONTHS = (
    r"(?:janv(?:ier|\.)?|f[ée]v(?:rier|\.)?|mars|avr(?:il|\.)?|mai|juin|juil(?:let|\.)?|ao[ûu]t|"
    r"sept(?:embre|\.)?|oct(?:obre|\.)?|nov(?:embre|\.)?|d[ée]c(?:embre|\.)?|"
    r"january|february|march|april|may|june|july|august|september|october|november|december)"
)
_DAY = r"(?:\d{1,2}(?:er)?|premier)"
_NUMERIC_DATE = r"\d{1,2}\s?[/.\-]\s?\d{1,2}\s?[/.\-]\s?\d{2,4}"
_BIRTH_MARKER = (
    r"(?:\bn[ée]e?s?\b(?:\s+le)?|\bdate\s+de\s+naissance\b|\bd\.?d\.?n\b\.?|\bbirth(?:day|\s*date)?\b|"
    r"\bborn(?:\s+on)?\b|\bdob\b|\bdate\s+of\s+birth\b)"
)
_BIRTH_DATE = re.compile(
    rf"(?i){_BIRTH_MARKER}\W{{0,3}}(?:{_NUMERIC_DATE}|{_DAY}\s+{_MONTHS}|{_MONTHS}\s+\d{{1,2}}\b)"
    rf"|(?<!\d)\d{{1,2}}\s?[/.\-]\s?\d{{1,2}}\s?[/.\-]\s?19[0-7]\d(?!\d)"
    rf"|(?i:\b{_DAY}\s+{_MONTHS}\s+19[0-7]\d\b)"
    rf"|(?<!\d)19[0-7]\d-\d{{2}}-\d{{2}}(?!\d)"
)
_TITLE = r"(?:M\.|Mr\.?|Mrs\.?|Ms\.?|Mme\.?|Mlle\.?|Monsieur|Madame|Mademoiselle|Dr\.?|Docteur|Pr\.?|Ma[îi]tre)"
_TITLED_NAME = re.compile(rf"(?<![\w.]){_TITLE}\s+((?:[A-ZÀ-ÖØ-Þ][A-ZÀ-ÖØ-Þa-zß-öø-ÿ'’]+)(?:[\s-][A-ZÀ-ÖØ-Þ][\w'’]+)*)")
_NOT_A_NAME = frozenset(
    {"le", "la", "les", "de", "du", "des", "et", "ou", "à", "au", "aux", "en", "un", "une", "son", "sa", "ses"}
    | {"se", "il", "elle", "est", "ne", "the", "and", "of", "madame", "monsieur"}
)


def _has_titled_name(text: str) -> bool:
    for match in _TITLED_NAME.finditer(text):
        word = re.split(r"[\s'’-]", match.group(1))[0].lower()
        if word not in _NOT_A_NAME and len(word) >= 2:
            return True
    return False


_EMAIL_HINT = re.compile(r"(?i)@|\bat\b|arobase")
_STREET_HINT = re.compile(rf"(?i){_STREET_WORDS}|{_AMBIGUOUS_STREET_WORDS}")
"""Cheap tests before the costly patterns (they backtrack at every position)."""


# --- the one definition ------------------------------------------------------------------------


def find_identifiers(text: str | None, free_text: bool = False) -> set[str]:
    """The kinds of direct identifier found in ``text`` (after ``normalise_text``); empty when none.

    ``free_text`` adds the kinds that only make sense in prose (``FREE_TEXT_KINDS``).
    """
    if not text:
        return set()
    normal = normalise_text(text)
    kinds = _number_kinds(normal) | _lettered_kinds(normal)
    if _EMAIL_HINT.search(normal) and _EMAIL.search(normal):
        kinds.add("email")
    if _has_phone(normal):
        kinds.add("phone")
    if free_text:
        checks = {
            "street_address": _STREET_HINT.search(normal) and _STREET.search(normal),
            "postcode": _POSTCODE.search(normal),
            "birth_date": _BIRTH_DATE.search(normal),
            "titled_name": _has_titled_name(normal),
        }
        kinds |= {kind for kind, found in checks.items() if found}
    return kinds


@cache
def _prefilter(free_text: bool) -> str:
    """A pattern every value ``find_identifiers`` flags also matches (on ``normalised_expression``):
    rows that do not match it are cleared without leaving Polars."""
    strict = [
        r"\d(?:[^\p{L}\d\n]{0,3}\d){7,}",  # eight digits or more, however separated: NIR, phones, IBAN, ...
        r"[0-9][^\p{L}\d\n]{0,3}[0-9][^\p{L}\d\n]{0,3}[Oo]",  # a digit look-alike inside a number
        r"[Oo][^\p{L}\d\n]{0,3}[0-9]",
        r"@|(?i:arobase|[(\[{<]\s*at\s*[)\]}>])",
        r"(?i:[a-z]{6}[0-9lmnpqrstuv]{2}[a-z][0-9lmnpqrstuv]{2}[a-z])",  # Italian tax code
        r"(?i:[xyz]\d{7})",  # Spanish foreign resident number
    ]
    prose = [
        r"\d{5}",
        rf"(?i:\d\s?(?:bis|ter|quater)?\s*,?\s*(?:{_STREET_WORDS}|{_AMBIGUOUS_STREET_WORDS})\s)",
        r"(?i:\bn[ée]e?s?\b|naissance|d\.?d\.?n|birth|born|dob)",
        r"19[0-7]\d",
        r"(?i:\b(?:m|mr|mrs|ms|mme|mlle|dr|pr)\b|monsieur|madame|mademoiselle|docteur|ma[îi]tre)",
    ]
    return "|".join(strict + (prose if free_text else []))


def identifier_hits(
    frame: pl.DataFrame, strict: Sequence[str], free_text: Sequence[str]
) -> tuple[pl.Series, pl.Series]:
    """For each row: whether any checked value holds a direct identifier, and the first such column.

    ``strict`` columns are checked for ``STRICT_KINDS``, ``free_text`` columns for ``FREE_TEXT_KINDS``.
    """
    hit_any = pl.Series([False] * frame.height, dtype=pl.Boolean)
    first = pl.Series([None] * frame.height, dtype=pl.String)
    for column in [*strict, *free_text]:
        if column not in frame.columns or frame.height == 0:
            continue
        prose = column in free_text
        candidates = frame.select(
            normalised_expression(pl.col(column)).str.contains(_prefilter(prose)).fill_null(False)
        ).to_series()
        rows = candidates.arg_true().to_list()
        if not rows:
            continue
        values = frame[column].cast(pl.String).gather(rows).to_list()
        found = [
            i
            for i, value in zip(rows, values, strict=True)
            if len(value) <= MAX_SCANNED_CHARS and find_identifiers(value, prose)
        ]
        if not found:
            continue
        flags = pl.Series([False] * frame.height, dtype=pl.Boolean).scatter(found, True)
        first = pl.select(pl.when(flags & first.is_null()).then(pl.lit(column)).otherwise(first)).to_series()
        hit_any = hit_any | flags
    return hit_any, first
