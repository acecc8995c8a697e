"""The privacy guard: find what looks like a direct identifier before anything is stored.

Column names are matched against a list of identifier names (French and English). Values are
matched against patterns: a French social-security number (NIR) whose control key is valid,
phone numbers, e-mail addresses everywhere; street addresses, full postcodes and birth dates
in free text and in columns outside the contract. Nothing here ever logs or returns a value:
only which rows and which column.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import polars as pl

_IDENTIFIER_NAMES = re.compile(
    r"^(?:nom|noms|prenom|prenoms|nom_de_naissance|nom_d_usage|nom_usage|name|names|first_?name|last_?name|"
    r"surname|given_?name|family_?name|full_?name|patient|beneficiaire_nom|"
    r"nir|ssn|nss|secu|securite_sociale|numero_secu|num_secu|n_secu|no_secu|numero_ss|insee|"
    r"tel|telephone|phone|phone_number|mobile|portable|fax|"
    r"e?mail|courriel|adresse_mail|"
    r"adresse|address|adresse_postale|street|rue|voie|"
    r"code_postal|codepostal|postcode|post_code|zip|zip_code|cp|"
    r"commune|ville|city|town|"
    r"date_de_naissance|date_naissance|naissance|birth_?date|date_of_birth|dob|ddn)$"
)

EMAIL = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}"
PHONE = r"(?:\+33\s?|0033\s?|\b0)[1-9](?:[\s.\-]?\d{2}){4}\b"
NIR_CANDIDATE = r"\b[12]\s?\d{2}\s?(?:0[1-9]|1[0-2]|[2-9]\d)\s?(?:\d{2}|2[ABab])\s?\d{3}\s?\d{3}\s?\d{2}\b"
STREET = (
    r"(?i)\b\d{1,4}\s?(?:bis|ter)?\s*,?\s*(?:rue|avenue|av\.|boulevard|bd|all[ée]e|chemin|impasse|place|route|"
    r"quai|cours|square|lotissement|r[ée]sidence|chauss[ée]e|faubourg)\s+\S+"
)
POSTCODE = r"\b(?:0[1-9]|[1-8]\d|9[0-8])\d{3}\b"
BIRTH_DATE = (
    r"(?i)(?:n[ée]e?\s+le|date\s+de\s+naissance|birth|born|dob|ddn)\W{0,3}\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}"
    r"|\b\d{1,2}[/.\-]\d{1,2}[/.\-]19[0-7]\d\b"
)


def _normalise(name: str) -> str:
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


def identifier_columns(columns: Sequence[str]) -> list[str]:
    """Columns whose name says they hold a direct identifier."""
    return [c for c in columns if _IDENTIFIER_NAMES.match(_normalise(c))]


def nir_is_valid(candidate: str) -> bool:
    """A 15-character NIR whose last two digits are 97 minus the first 13 modulo 97."""
    compact = re.sub(r"\s", "", candidate).upper()
    if len(compact) != 15:
        return False
    body, key = compact[:13], compact[13:]
    body = body.replace("2A", "19").replace("2B", "18")
    if not (body.isdigit() and key.isdigit()):
        return False
    return 97 - int(body) % 97 == int(key)


def _nir_hits(text: pl.Series) -> pl.Series:
    candidates = text.str.extract_all(NIR_CANDIDATE)
    hits = pl.Series([False] * text.len(), dtype=pl.Boolean)
    has = candidates.list.len().fill_null(0) > 0
    if not has.any():
        return hits
    rows = has.arg_true().to_list()
    flags = [any(nir_is_valid(c) for c in candidates[i]) for i in rows]
    return hits.scatter(rows, flags)


def identifier_hits(
    frame: pl.DataFrame, strict: Sequence[str], free_text: Sequence[str]
) -> tuple[pl.Series, pl.Series]:
    """For each row: whether any checked value looks like an identifier, and the first such column.

    ``strict`` columns are checked for NIR, phone and e-mail; ``free_text`` columns for those
    and for street addresses, postcodes and birth dates.
    """
    hit_any = pl.Series([False] * frame.height, dtype=pl.Boolean)
    first = pl.Series([None] * frame.height, dtype=pl.String)
    for column in [*strict, *free_text]:
        if column not in frame.columns:
            continue
        text = frame[column].cast(pl.String)
        found = text.str.contains(EMAIL).fill_null(False) | text.str.contains(PHONE).fill_null(False)
        if column in free_text:
            for pattern in (STREET, POSTCODE, BIRTH_DATE):
                found = found | text.str.contains(pattern).fill_null(False)
        found = found | _nir_hits(text)
        first = pl.select(pl.when(found & first.is_null()).then(pl.lit(column)).otherwise(first)).to_series()
        hit_any = hit_any | found
    return hit_any, first
