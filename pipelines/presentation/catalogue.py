"""The message catalogue: one gettext ``.po`` file per language, read with Babel, keyed by message ids.

Message ids are stable keys (``verdict.status.publishable``, ``code.payer.pension_fund``), not English
sentences: a key says where a message is used, both languages are translations of it, and a test
checks that every key exists in both with the same placeholders (``{name}``, ``str.format``). The
catalogue is read once per process; it is data shipped with the code, never fetched.

Codes the data holds (referral sources, payers, GIR and age bands, cohorts, outcomes, covariates,
checks, designs...) are labelled through ``label(kind, code)``: key ``code.<kind>.<code>``. A code
without a label is shown as the code itself (a new code must never break a page), and a test lists
every code the contract and the study schema allow and requires a label for each.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any, Literal, cast

from babel.messages.pofile import read_po

Language = Literal["fr", "en"]
LANGUAGES: tuple[Language, ...] = ("fr", "en")
DEFAULT_LANGUAGE: Language = "fr"
DOMAIN = "parcours"
LOCALES = Path(__file__).with_name("locales")
PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)[^{}]*\}")


def language_of(value: object) -> Language:
    """A language code from anywhere (a session, a file, a command line): French unless it is English."""
    return "en" if str(value).strip().lower().startswith("en") else DEFAULT_LANGUAGE


def catalogue_path(language: Language) -> Path:
    return LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def messages(language: Language) -> dict[str, str]:
    """Every message of a language: id -> text (empty translations are left out, so they show as missing)."""
    with catalogue_path(language).open("rb") as handle:
        catalog = read_po(handle, locale=language, domain=DOMAIN)
    return {str(m.id): str(m.string) for m in catalog if m.id and m.string}


def keys(language: Language = DEFAULT_LANGUAGE) -> set[str]:
    return set(messages(language))


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def has(key: str) -> bool:
    return key in messages(DEFAULT_LANGUAGE)


def t(key: str, language: Language = DEFAULT_LANGUAGE, **values: Any) -> str:
    """The message ``key`` in ``language`` with its placeholders filled. An unknown key raises ``KeyError``:
    a missing message is a bug for the tests to find, not a sentence to improvise."""
    template = messages(cast(Language, language))[key]
    return template.format(**values) if values else template


def label(kind: str, code: object, language: Language = DEFAULT_LANGUAGE) -> str:
    """The words for a code the data holds (``label("payer", "pension_fund")`` → « caisse de retraite »);
    the code itself when the catalogue has none."""
    if code is None:
        return t("value.unknown", language)
    key = f"code.{kind}.{code}"
    found = messages(cast(Language, language)).get(key)
    return found if found is not None else str(code)


def has_label(kind: str, code: object) -> bool:
    return all(f"code.{kind}.{code}" in messages(language) for language in LANGUAGES)


def codes(kind: str, language: Language = DEFAULT_LANGUAGE) -> list[str]:
    """The codes of one kind the catalogue labels, in catalogue order (which is the natural order)."""
    prefix = f"code.{kind}."
    return [k.removeprefix(prefix) for k in messages(language) if k.startswith(prefix)]


NATURAL_ORDER: dict[str, tuple[str, ...]] = {
    "age_band": ("under 60", "60-74", "75-84", "85-94", "95 and over"),
    "gir_band": ("GIR 1-2", "GIR 3-4", "GIR 5-6", "unknown"),
    "agency_model": ("remote", "proximity", "integrated"),
    "cohort": ("care_managed", "comparison"),
    "period": ("before", "after"),
    "scenario": ("low", "central", "high"),
    "subgroup_dimension": ("all", "gir_band", "age_band", "agency_model"),
}
"""Categories in the order a reader expects them («moins de 60 ans» first, GIR 1-2 the most dependent first),
never alphabetical ("under 60" used to sort after "95 and over")."""


def natural_rank(kind: str, code: object) -> int:
    """Where a code stands in its kind's natural order; unknown codes after the known ones."""
    order = NATURAL_ORDER.get(kind, ())
    return order.index(str(code)) if str(code) in order else len(order)
