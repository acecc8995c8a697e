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
from text_to_num import alpha2digit

_IDENTIFIER_NAMES = re.compile(
    r"^(?:nom|noms|prenom|prenoms|nom_de_naissance|nom_d_usage|nom_usage|name|names|first_?name|last_?name|"
    r"surname|given_?name|family_?name|full_?name|patient|beneficiaire_nom|"
    r"nir|ssn|nss|secu|securite_sociale|numero_secu|num_secu|n_secu|no_secu|numero_ss|insee|"
    r"tel|telephone|phone|phone_number|mobile|portable|fax|gsm|"
    r"(?:num(?:ero)?_|no_|n_)?(?:de_)?(?:tel|telephone)(?:_(?:portable|fixe|mobile|domicile))?|"
    r"(?:adresse_)?e_?mail|courriel|adresse_mail|mail_contact|"
    r"nom_prenom|prenom_nom|nom_complet|num_ss|n_ss|no_ss|numero_securite_sociale|"
    r"date_naiss|date_de_naiss|lieu_de_naissance|lieu_naissance|"
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
    """Columns whose name says they hold a direct identifier, or holds one (``jean.dupont@example.fr``)."""
    return [c for c in columns if _IDENTIFIER_NAMES.match(_normalise_name(c)) or name_holds_identifier(c)]


def name_holds_identifier(name: str) -> bool:
    """Whether a file's, a sheet's or a column's name holds a direct identifier (``_`` read as a space).
    Postcodes are left out: five digits in a name are an agency's or a period's code."""
    return bool(find_identifiers(name.replace("_", " "), free_text=True) - {"postcode"})


# --- normalisation ---------------------------------------------------------------------------

INVISIBLE = "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]"
"""Characters that show nothing but split a number for a naive pattern (soft hyphen, zero-width...)."""
DASHES = "[\u2010-\u2015\u2043\u2212\u2e3a\u2e3b\ufe58\ufe63\uff0d]"
WHITE_SPACE = "[\t\n\x0b\x0c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
"""Unicode's White_Space, spelt out: Python's and Polars' ``\\s`` disagree on \\x1c-\\x1f."""
SPACES = WHITE_SPACE.replace("\n", "") + "+"
"""White space but line breaks, where a run becomes one space."""
_ASCII_DIGITS = {
    code: str(unicodedata.decimal(chr(code)))
    for code in range(0x80, 0x110000)
    if unicodedata.category(chr(code)) == "Nd"
}
"""Every script's decimal digits (Arabic-Indic ``٢``, Devanagari ``२``...: NFKC leaves them) as 0-9."""
_LOOKALIKE_LETTERS = str.maketrans("ОоΟοՕօІӀΙǀ", "OoOoOoIIIl")
"""Cyrillic, Greek and Armenian letters drawn like O and I, as the Latin letters they imitate."""
_LOOKALIKES = "[OoIlОоΟοՕօІӀΙǀ]"
_LOOKALIKE_IN_NUMBER = re.compile(r"(?<![^\W\d_])[OoIl](?![^\W\d_])")
_NEAR_DIGIT_BEFORE = re.compile(r"[0-9][^\w,;:|]{0,3}$")
_NEAR_DIGIT_AFTER = re.compile(r"^[^\w,;:|]{0,3}[0-9]")


def _digit_for_lookalike(match: re.Match[str]) -> str:
    """A lone O, o, I or l standing among digits (not inside a word) is the digit it imitates."""
    text, at = match.string, match.start()
    if _NEAR_DIGIT_BEFORE.search(text, max(0, at - 4), at) or _NEAR_DIGIT_AFTER.match(text[at + 1 : at + 5]):
        return "0" if match.group() in "Oo" else "1"
    return match.group()


_CODE_LETTER = re.compile(r"(?<![0-9\s])[OoIl](?=[0-9]{6})")
"""A look-alike letter that begins a code's counter (``AG006-I01630000``): after neither a digit nor a space
(a number's groups are spaced: ``+31 6 I2294860``), before six digits."""


def _digit_unless_code_letter(match: re.Match[str]) -> str:
    return match.group() if _CODE_LETTER.match(match.string, match.start()) else _digit_for_lookalike(match)


def _unified(text: str) -> str:
    """``normalise_text`` before its look-alike letters are read as digits."""
    text = unicodedata.normalize("NFKC", text).translate(_ASCII_DIGITS)
    text = re.sub(INVISIBLE, "", text)
    text = re.sub(DASHES, "-", text)
    return re.sub(SPACES, " ", text).translate(_LOOKALIKE_LETTERS)


def _lookalikes_read(unified: str, code_letters: bool = False) -> str:
    return _LOOKALIKE_IN_NUMBER.sub(_digit_unless_code_letter if code_letters else _digit_for_lookalike, unified)


def normalise_text(text: str, code_letters: bool = False) -> str:
    """The form every value is matched in: NFKC (full-width digits, ligatures, ＠), every script's
    digits as 0-9, no invisible characters, one kind of dash and of space, and letters drawn like
    digits (O, I, l, and their Cyrillic and Greek twins) read as 0 and 1 where they stand among digits,
    except, with ``code_letters``, one that begins a code's counter (``_CODE_LETTER``)."""
    return _lookalikes_read(_unified(text), code_letters)


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

_SEPARATOR = r"(?:_|[^\w,;:|+])"
"""Anything between two digits that is neither a letter nor a digit nor a list separator (``,``,
``;``, ``:``, ``|``): spaces of every kind, line breaks, dots, dashes, slashes, underscores, middle
dots, brackets..."""
_DIGIT_RUN = re.compile(rf"[0-9](?:{_SEPARATOR}{{0,4}}(?:[0-9]|(?<=2)[ABab]))+")
"""Digits joined by at most four separators (``1.75.08``, ``1 -- 75 -- 08``); ``2A``/``2B`` (Corsica)."""
_SEPARATORS = re.compile(f"{_SEPARATOR}+")


def _windows(run: str) -> Iterator[tuple[str, bool, int, bool]]:
    """Compact candidates in a run of digit groups, with: whether each is written as a phone number
    can be (one separator throughout, and the whole run or groups of two digits), where it starts
    in ``run``, and whether it is made of whole groups. Candidates: whole groups from one group's
    start to another's end, and every 8 to 15 consecutive characters inside a long group (numbers
    glued together)."""
    groups = [(m.group(), m.start()) for m in re.finditer(rf"(?:(?!{_SEPARATOR}).)+", run)]
    separators = [re.sub(r"\s+", " ", s) for s in _SEPARATORS.findall(run)]  # a line break is a space
    for start in range(len(groups)):
        text = ""
        for end in range(start, len(groups)):
            text += groups[end][0]
            if len(text) > 16:
                break
            one_separator = len(set(separators[start:end])) <= 1
            whole_run = start == 0 and end == len(groups) - 1
            in_pairs = all(len(g) == 2 for g, _ in groups[start : end + 1])  # 06 98 76 54 32 in a longer run
            yield text, one_separator and (whole_run or in_pairs), groups[start][1], True
    for group, at in groups:
        if 8 < len(group) <= LONGEST_GLUED_GROUP:
            for size in range(8, 16):
                for offset in range(len(group) - size + 1):
                    yield group[offset : offset + size], False, at + offset, False


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


_FRENCH_PHONE = re.compile(r"0[1-79]\d{8}")
"""A French number in its national form, whatever its range (allocated or not, mainland or overseas);
``08`` numbers are services' (free, shared-cost and premium-rate lines), no person's."""
_REFERENCE_BEFORE = re.compile(
    r"(?i)\b(?:dossier|r[ée]f(?:[ée]rence)?|facture|allocataire|contrat|apa|pch|mdph|caf|cpam|msa|carsat|cnav)"
    r"\W{0,3}(?:n\s?[°º]|no\b|num[ée]ro)?\W{0,3}$"
)
"""A reference number's label right before a number (``dossier APA n° 01 23 45 67 89``)."""


def _is_reference(text: str, start: int, digits: str) -> bool:
    """A benefit's or an invoice's number written like a landline, right after its label; a
    mobile number (06, 07) is a person's whatever its label."""
    return not digits.startswith(("06", "07")) and _REFERENCE_BEFORE.search(text, max(0, start - 40), start) is not None


def _number_kinds(text: str) -> set[str]:
    kinds: set[str] = set()
    for match in _DIGIT_RUN.finditer(text):
        for candidate, phone_like, at, aligned in _windows(match.group()):
            if _is_nir(candidate):
                kinds.add("nir")
            elif phone_like and _FRENCH_PHONE.fullmatch(candidate):
                if not _is_reference(text, match.start() + at, candidate):
                    kinds.add("phone")
            elif not aligned:
                continue  # a short check digit matches one window in a hundred inside a long reference
            elif len(candidate) == 13 and candidate[0] in "0123" and french_tax_number.is_valid(candidate):
                kinds.add("tax_number")
            elif _is_foreign_national_number(candidate):
                kinds.add("foreign_national_number")
    return kinds


_IBAN = re.compile(r"(?<![A-Z0-9])[A-Z]{2}\d{2}(?:[ .\-_/]?[A-Z0-9]){11,30}")
_OMOCODE_DIGIT = "[0-9LMNPQRSTUV]"
_CODICE_FISCALE = re.compile(
    rf"(?<![A-Z0-9])[A-Z]{{6}}{_OMOCODE_DIGIT}{{2}}[A-Z]{_OMOCODE_DIGIT}{{2}}[A-Z]{_OMOCODE_DIGIT}{{3}}[A-Z]"
)
_SPANISH_ID = re.compile(r"(?<![A-Z0-9])(?:\d{8}|[XYZ]\d{7}) ?-?[A-Z](?![A-Z0-9])")


def _lettered_kinds(text: str) -> set[str]:
    upper = text.upper()
    kinds: set[str] = set()
    for match in _IBAN.finditer(upper):
        compact = re.sub(r"[^A-Z0-9]", "", match.group())
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


_SERVICE_LINES = frozenset(
    {
        phonenumbers.PhoneNumberType.TOLL_FREE,
        phonenumbers.PhoneNumberType.SHARED_COST,
        phonenumbers.PhoneNumberType.PREMIUM_RATE,
        phonenumbers.PhoneNumberType.UAN,
    }
)


SHORTEST_FOREIGN_NUMBER = 6
"""Digits of a foreign number's national part below which it is no person's line: ``phonenumbers``
accepts a few short ones (``00 43 1110``, a Vienna line of four digits), and a record's code with a
zero-padded counter (``EV-00431110``) reads as one; Luxembourg's six-digit landlines, the shortest
personal numbers near France, are still found."""


def _has_phone(text: str) -> bool:
    """``phonenumbers``' matcher (French numbers in any form, any international number), run only
    around runs of eight digits or more that are not a date: it costs a hundred times a regex.
    Services' lines (free, shared-cost, premium-rate) and labelled references are no one's phone."""
    # The matcher refuses a number glued to letters (``tel0698765432``): unglue them first.
    spaced = _LETTER_DIGIT.sub(" ", text)
    for candidate in _PHONE_CANDIDATE.finditer(spaced):
        if _DATE_LIKE.fullmatch(candidate.group()):
            continue
        offset = max(0, candidate.start() - 4)
        window = spaced[offset : candidate.end() + 1]
        for found in phonenumbers.PhoneNumberMatcher(window, "FR", leniency=phonenumbers.Leniency.VALID):
            if phonenumbers.number_type(found.number) in _SERVICE_LINES:
                continue
            national = phonenumbers.national_significant_number(found.number)
            if found.number.country_code != 33 and len(national) < SHORTEST_FOREIGN_NUMBER:
                continue
            digits = "0" + national if found.number.country_code == 33 else found.raw_string
            if _is_reference(spaced, offset + found.start, digits):
                continue
            return True
    return False


_AT = re.compile(
    r"(?i)(?P<strong>\s*@\s*|%40|\s*[(\[{<]\s*(?:@|at|arr?obase)\s*[)\]}>]\s*|\s+arr?obase\s+)"
    r"|(?P<word>\s+at\s+|\s*[(\[{<]\s*a\s*[)\]}>]\s*)|(?P<french>\s+(?:chez|a|à)\s+)"
)
"""What stands for ``@``: the sign, ``%40``, ``(at)``, ``arobase`` (strong); the English ``at`` and
``(a)`` (then a known provider suffices: ``jean point dupont at gmail``); ``chez``, ``a``, ``à``
(French words: then only before a whole domain, ``a gmail.com``)."""
_DOT = r"(?:\s*\.\s*|\s*[(\[{<]\s*(?:\.|dot|point)\s*[)\]}>]\s*|\s+(?:dot|point)\s+)"
_DOMAIN = re.compile(rf"(?i)[\w\-]+(?:{_DOT}[\w\-]+)*")
_DOT_SPLIT = re.compile(rf"(?i){_DOT}")
_LOCAL_PART_END = re.compile(r"[\w.%+\-]$")
MAIL_PROVIDERS = frozenset(
    {
        "gmail",
        "googlemail",
        "yahoo",
        "ymail",
        "hotmail",
        "outlook",
        "live",
        "msn",
        "aol",
        "icloud",
        "me",
        "gmx",
        "proton",
        "protonmail",
        "orange",
        "wanadoo",
        "free",
        "sfr",
        "neuf",
        "laposte",
        "bbox",
        "numericable",
        "club-internet",
        "aliceadsl",
        "voila",
        "noos",
        "libertysurf",
        "cegetel",
        "tiscali",
    }
)
MAIL_TLDS = frozenset(
    {
        "fr",
        "com",
        "net",
        "org",
        "eu",
        "be",
        "ch",
        "lu",
        "de",
        "it",
        "es",
        "uk",
        "info",
        "biz",
        "io",
        "re",
        "mc",
        "ca",
        "ma",
        "dz",
        "tn",
        "sn",
        "gp",
        "mq",
        "gf",
        "yt",
        "nc",
        "pf",
    }
)


def _has_email(text: str) -> bool:
    """An e-mail address, written plainly or spelt out to get past a filter."""
    for at in _AT.finditer(text):
        if not _LOCAL_PART_END.search(text, max(0, at.start() - 1), at.start()):
            continue
        domain = _DOMAIN.match(text, at.end())
        if domain is None:
            continue
        labels = [label.lower() for label in _DOT_SPLIT.split(domain.group())]
        whole = len(labels) > 1 and labels[-1] in MAIL_TLDS
        if at.group("strong") or whole or (at.group("word") and labels[0] in MAIL_PROVIDERS):
            return True
    return False


# Coarse patterns for scripts that cannot call ``find_identifiers`` (the pandas peer of the
# benchmarks): they match plain forms only, and an NIR without checking its key.
EMAIL = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}"
PHONE = r"(?:\+33\s?|0033\s?|\b0)[1-9](?:[\s.\-]?\d{2}){4}\b"
NIR_CANDIDATE = r"\b[12]\s?\d{2}\s?(?:0[1-9]|1[0-2]|[2-9]\d)\s?(?:\d{2}|2[ABab])\s?\d{3}\s?\d{3}\s?\d{2}\b"


# --- free text only ----------------------------------------------------------------------------

_TITLE_WORDS = (
    r"(?:(?i:monsieur|madame|mademoiselle|messieurs|mesdames|docteur|docteure|professeur|professeure|ma[îi]tre|"
    r"mme|mmes|mlle|mr|mrs|ms|dr|vve)|M|MM|Me|Pr)"
)
_TITLE = rf"(?:{_TITLE_WORDS}\.?)"
"""Titles in any case (``MME``, ``Mme.``); ``M``, ``Me`` (Maître) and ``Pr`` capitalised only (``pr``
is short for *pour*)."""

_STREET_WORDS = (
    r"(?:rue|r\.|avenue|av\.?|ave\.?|bd\.?|bld\.?|blvd\.?|boulevard|all[ée]e|all\.|chemin|chem\.|ch\.|impasse|imp\.|"
    r"pl\.|rte\.?|quai|square|sq\.|lotissement|lot\.|r[ée]sidence|r[ée]s\.|chauss[ée]e|faubourg|fbg\.?|fg\.|sentier|"
    r"hameau|lieu-dit|lieudit|venelle|ruelle|parvis|esplanade|street|st\.|road|rd\.|lane)"
)
_AMBIGUOUS_STREET_WORDS = r"(?:place|passage|cours|route|villa|cit[ée])"
"""Also ordinary words ("2 passages", "mise en place"): a street only before a capitalised name."""
_NUMBER_IN_STREET = r"\b\d{1,4}\s?(?:bis|ter|quater)?\s*,?\s*"
_ARTICLE = r"(?:(?:de|du|des|de la|d'|d’|l'|l’|les|la|le)\s*)?"
_PLACE_NAME = r"[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]"
_KINDS_OF_HOME = r"(?:Autonomie|Services?|S[ée]niors?|M[ée]dicalis[ée]e|Sociale)\b"
"""``Résidence Autonomie``, ``Résidence Services``: a kind of home, not its name."""
"""A capitalised word (``Lilas``, ``Granges``), not an acronym (``SSIAD``)."""
_STREET = re.compile(
    rf"(?i:{_NUMBER_IN_STREET}{_STREET_WORDS}\s+\S+)"
    rf"|(?i:{_NUMBER_IN_STREET}{_AMBIGUOUS_STREET_WORDS})\s+{_ARTICLE}[A-ZÀ-ÖØ-Þ]"
    rf"|(?i:\b{_STREET_WORDS}\s+){_ARTICLE}(?!{_TITLE_WORDS}\b|{_KINDS_OF_HOME}){_PLACE_NAME}"
    rf"|(?i:\b(?:place|route|villa|cit[ée])\s+(?:de|du|des|de la|d'|d’)\s*)(?!{_TITLE_WORDS}\b){_PLACE_NAME}"
)
"""A number then a street word, or a street word before a place name (``rue des Lilas``,
``lieu-dit Les Granges``): both say where a person lives."""
_NOT_A_POSTCODE_AFTER = (
    r"\s*(?:€|eur\b|euros?\b|e\b|h\b|heures?\b|hrs?\b|min\b|minutes?\b|km\b|m\b|m2|m²|%|ans?\b|jours?\b|j\b|"
    r"mois\b|semaines?\b|fois\b|pts?\b|points?\b|kg\b|g\b|mg\b|ml\b|l\b|passages?\b|appels?\b|visites?\b)"
)
_POSTCODE = re.compile(
    rf"(?i)(?<![\d.,€$])(?<!€ )(?<!\d[-/])(?<!n°)(?<!n° )(?<!nº)(?<!nº )"
    rf"(?:0[1-9]|[1-8]\d|9[0-8])\d{{3}}(?![\d])(?!,\d)(?!\.\d)(?![-/]\d)(?!{_NOT_A_POSTCODE_AFTER})"
)
_SPACED_POSTCODE = re.compile(
    rf"(?<![\d.,])(?:0[1-9]|[1-8]\d|9[0-8]) ?\d{{3}}(?![\d.,])(?!(?i:{_NOT_A_POSTCODE_AFTER}))"
    r"\s+[A-ZÀ-ÖØ-Þ][\w'’-]{2,}"
    r"|(?i:\bcp\b|\bcode postal\b)\W{0,3}(?:0[1-9]|[1-8]\d|9[0-8]) ?\d{3}\b|\((?:0[1-9]|[1-8]\d|9[0-8]) \d{3}\)"
)
"""A postcode written ``38 000`` before its town (``75 012 Paris``) or after ``CP``: an amount
(``20 000 €``) is followed by a unit, not a capitalised name."""
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
    rf"(?i){_BIRTH_MARKER}\W{{0,3}}(?:{_NUMERIC_DATE}|{_DAY}\s+{_MONTHS}|{_MONTHS}\s+\d{{1,2}}\b|en\s+{_MONTHS})"
    rf"|(?i:(?:\banniversaire\b\W{{0,3}}(?:le\s+)?|\b(?:[2-9]\d|1[01]\d)\s+ans\s+le\s+)"
    rf"(?:{_DAY}\s+{_MONTHS}|\d{{1,2}}\s?[/.]\s?\d{{1,2}}))"
    rf"|(?<!\d)\d{{1,2}}\s?[/.\-]\s?\d{{1,2}}\s?[/.\-]\s?19[0-7]\d(?!\d)"
    rf"|(?i:\b{_DAY}\s+{_MONTHS}\s+19[0-7]\d\b)"
    rf"|(?<!\d)19[0-7]\d-\d{{2}}-\d{{2}}(?!\d)"
)
_TITLED_NAME = re.compile(
    rf"(?<![\w.]){_TITLE}\s+(?:(?:veuve|vve|[ée]pouse|[ée]p\.|n[ée]e|de|du|des|de la|d'|d’|le|la|van|von)\s*)*"
    rf"((?:[A-ZÀ-ÖØ-Þ][A-ZÀ-ÖØ-Þa-zß-öø-ÿ'’]+)(?:[\s-][A-ZÀ-ÖØ-Þ][\w'’]+)*)"
)
"""A title, then particles (``veuve``, ``épouse``, ``de La``), then a capitalised name."""
_NOT_A_NAME = frozenset(
    {"le", "la", "les", "de", "du", "des", "et", "ou", "à", "au", "aux", "en", "un", "une", "son", "sa", "ses"}
    | {"se", "il", "elle", "est", "ne", "the", "and", "of", "madame", "monsieur"}
    | {"maire", "juge", "directeur", "directrice", "président", "présidente", "préfet", "médecin", "docteur"}
    | {"aîné", "aînée", "ainé", "ainée", "cadet", "cadette", "unique", "handicapé", "handicapée", "malade"}
    | {"alzheimer", "parkinson", "charcot", "crohn", "huntington", "korsakoff", "lewy", "down", "pick"}
)
"""Capitalised words after a title or a relative that name no one (``son mari Alzheimer``)."""
_KIN = (
    r"(?:fils|fille|petite?-(?:fils|fille)|mari|[ée]poux|[ée]pouse|femme|conjointe?|compagnon|compagne|fr[èe]re|"
    r"s[œoe]e?ur|p[èe]re|m[èe]re|neveu|ni[èe]ce|gendre|belle-fille|beau-fils|bru|cousine?|voisine?|amie?|aidante?|"
    r"tut(?:eur|rice)|curat(?:eur|rice)|oncle|tante|beau-fr[èe]re|belle-s[œoe]e?ur|filleule?|petite?-ami?e?)"
)
_KIN_NAME = re.compile(
    rf"(?i:\b(?:sa|son|ses|leur|leurs|la|le|les|du|de la|des|sa petite|son petit)\s+{_KIN}s?),?\s+"
    rf"(?!{_TITLE_WORDS}\b)([A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ'’]+)"
)
"""A first name after a relative (``sa fille Nathalie``, ``son voisin Paul``): capitalised, not an
acronym (``son fils IDE``), not a title (``sa fille Mme...`` is found as a titled name)."""


def _has_titled_name(text: str) -> bool:
    for match in [*_TITLED_NAME.finditer(text), *_KIN_NAME.finditer(text)]:
        words = [w.lower() for w in re.split(r"[\s'’-]+", match.group(1)) if w]
        name = next((w for w in words if w not in _NOT_A_NAME), "")  # "Mme de La Fontaine"
        if len(name) >= 2:
            return True
    return False


_EMAIL_HINT = re.compile(
    rf"(?i)@|%40|\bat\b|arr?obase|[(\[{{<]\s*a\s*[)\]}}>]|(?:[.)\]}}>]|\b(?:dot|point)\b)\s*(?:{'|'.join(MAIL_TLDS)})\b"
)
_STREET_HINT = re.compile(rf"(?i)\b(?:{_STREET_WORDS}|{_AMBIGUOUS_STREET_WORDS})")
"""Cheap tests before the costly patterns (they backtrack at every position)."""


# --- the one definition ------------------------------------------------------------------------


_NUMBER_WORDS = (
    r"(?i:\bz[ée]ro\b|(?:\b(?:un|une|deux|trois|quatre|cinq|six|sept|huit|neuf|dix|onze|douze|treize|quatorze|"
    r"quinze|seize|vingts?|trente|quarante|cinquante|soixante|cents?|mille|mil|et)\b[\s,-]*){4,})"
)
_NUMBER_WORDS_HINT = re.compile(_NUMBER_WORDS)
"""``zéro``, or four number words in a row: a number spelt out (``zéro six quatre-vingt-dix-huit...``)."""


def _spelt_out(text: str) -> str | None:
    """``text`` with numbers written in French words as digits (``text2num``), when it has some:
    a phone, a NIR or a birth date spelt out is still one."""
    if not _NUMBER_WORDS_HINT.search(text):
        return None
    digits = alpha2digit(re.sub(r"(?i)\bzero\b", "zéro", text), "fr")
    # Digits dictated in pairs are written with commas between them: "zéro six, neuf huit".
    digits = re.sub(r"(?<=\d) ?, ?(?=\d)", " ", digits)
    return digits if digits != text else None


def find_identifiers(text: str | None, free_text: bool = False) -> set[str]:
    """The kinds of direct identifier found in ``text`` (after ``normalise_text``, and again with
    numbers in words written as digits); empty when none.

    ``free_text`` adds the kinds that only make sense in prose (``FREE_TEXT_KINDS``).
    """
    if not text:
        return set()
    unified = _unified(text)
    normal = _lookalikes_read(unified)
    forms = [form for form in (normal, _spelt_out(normal)) if form]
    # In an identifier or a code, a look-alike letter that begins a counter is the code's type letter
    # (AG008-I00004886, AG006-I01630000, AG330-I01630000: read as a 1, the agency's 008, 006 or 330 then began
    # 00 81, 00 61 or 33, a number across the dash). There phonenumbers' matcher, which joins groups into any
    # country's numbers, reads it as a letter; every other look-alike is read as its digit (+33 6 98 76 54 3l,
    # (O6) 98...), and the other kinds read them all. In free text every look-alike is read. That reading only
    # clears a number the usual one finds, never finds one of its own: the engine's prefilter, which reads every
    # look-alike, must still send every value the guard flags (I00376712345 would be 00 376 712345 as a letter).
    phone = any(_has_phone(form) for form in forms)
    as_read = normal if free_text else _lookalikes_read(unified, code_letters=True)
    if phone and as_read != normal:
        phone = any(_has_phone(form) for form in (as_read, _spelt_out(as_read)) if form)
    kinds: set[str] = {"phone"} if phone else set()
    for form in forms:
        kinds |= _number_kinds(form) | _lettered_kinds(form)
        if _EMAIL_HINT.search(form) and _has_email(form):
            kinds.add("email")
        if free_text:
            checks = {
                "street_address": _STREET_HINT.search(form) and _STREET.search(form),
                "postcode": _POSTCODE.search(form) or _SPACED_POSTCODE.search(form),
                "birth_date": _BIRTH_DATE.search(form),
                "titled_name": _has_titled_name(form),
            }
            kinds |= {kind for kind, found in checks.items() if found}
    return kinds


@cache
def _prefilter(free_text: bool) -> str:
    """A pattern every value ``find_identifiers`` flags also matches (on ``normalised_expression``):
    rows that do not match it are cleared without leaving Polars."""
    strict = [
        r"\d(?:[^\p{L}\d,;:|+]{0,4}\d){7,}",  # eight digits or more, however separated: NIR, phones, IBAN, ...
        rf"\d[^\p{{L}}\d,;:|+]{{0,4}}{_LOOKALIKES}|{_LOOKALIKES}[^\p{{L}}\d,;:|+]{{0,4}}\d",  # a letter for a digit
        _EMAIL_HINT.pattern,
        r"(?i:[a-z]{6}[0-9lmnpqrstuv]{2}[a-z][0-9lmnpqrstuv]{2}[a-z])",  # Italian tax code
        r"(?i:[xyz]\d{7})",  # Spanish foreign resident number
        _NUMBER_WORDS,
    ]
    prose = [
        r"\d{5}|\d{2}\s\d{3}|(?i:\bcp\b|code postal)",
        rf"(?i:\d\s?(?:bis|ter|quater)?\s*,?\s*(?:{_STREET_WORDS}|{_AMBIGUOUS_STREET_WORDS})\s)",
        rf"(?i:\b(?:{_STREET_WORDS}|place|route|villa|cit[ée])\s)",
        r"(?i:\bn[ée]e?s?\b|naissance|d\.?d\.?n|birth|born|dob|anniversaire|\d\s+ans\s+le\b)",
        r"19[0-7]\d",
        r"(?i:\b(?:m|mm|me|mr|mrs|ms|mme|mmes|mlle|dr|pr|vve)\b|monsieur|madame|mademoiselle|messieurs|mesdames|"
        r"docteure?|professeure?|ma[îi]tre)",
        rf"(?i:\b(?:sa|son|ses|leur|leurs|la|le|les|du|de la|des|sa petite|son petit)\s+{_KIN})",
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
