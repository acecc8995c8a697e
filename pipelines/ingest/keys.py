"""One written form for every identifier an agency sends: keys and the references to them.

An agency's tools may write the same person ``ag001-p0001``, ``AG001‑P0001`` (a non-breaking
hyphen), ``AG001-P0001 `` or ``ＡＧ００１-Ｐ０００１`` (full width). These are one person: the
same normalisation is applied to every key and every reference before they are compared,
de-duplicated or re-keyed, so a child row never loses its parent to a spelling.

The rule (``normalise_key``): Unicode compatibility form NFKC (full-width and other
look-alike forms), invisible format characters removed, every dash and minus sign read as
``-``, runs of white space read as one space and trimmed, then upper case. Identifier
columns are the contract's string fields named ``*_id`` (``KEY_SUFFIX``).
"""

from __future__ import annotations

import re
import unicodedata

import polars as pl

from pipelines.contract import Entity
from pipelines.ingest.privacy import DASHES, INVISIBLE, WHITE_SPACE

KEY_SUFFIX = "_id"
_SPACES = WHITE_SPACE + "+"


def normalise_key(value: str) -> str:
    """The form an identifier is compared, de-duplicated and re-keyed in."""
    text = unicodedata.normalize("NFKC", value)
    text = re.sub(INVISIBLE, "", text)
    text = re.sub(DASHES, "-", text)
    text = re.sub(_SPACES, " ", text).strip(" ")
    return text.upper()


def key_expression(expr: pl.Expr) -> pl.Expr:
    """``normalise_key`` as a vectorised expression over a string column (nulls and blanks stay null)."""
    text = (
        expr.cast(pl.String)
        .str.normalize("NFKC")
        .str.replace_all(INVISIBLE, "")
        .str.replace_all(DASHES, "-")
        .str.replace_all(_SPACES, " ")
        .str.strip_chars(" ")
        .str.to_uppercase()
    )
    return pl.when(text == "").then(None).otherwise(text)


def key_columns(entity: Entity) -> list[str]:
    """The identifier columns of an entity: its string fields named ``*_id``."""
    return [f.name for f in entity.fields if f.type == "string" and f.name.endswith(KEY_SUFFIX)]
