"""Numbers, percentages, money and dates in the reader's language, with Babel: the one place they are formatted.

French: ``1 234,6``, ``12 %``, ``−345 647 €``, ``30 nov. 2026``; English: ``1,234.6``, ``12%``,
``−€345,647``, ``30 Nov 2026``. Negative numbers carry a true minus sign (U+2212). A value that is
missing because disclosure control withheld it reads « non communiqué » / "not shown", never "None".
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import SupportsFloat
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime, format_skeleton
from babel.numbers import format_currency, format_decimal, format_percent

from pipelines.presentation.catalogue import DEFAULT_LANGUAGE, Language, t

LOCALES: dict[Language, str] = {"fr": "fr_FR", "en": "en_GB"}
MINUS = "\u2212"
PARIS = ZoneInfo("Europe/Paris")
PLOTLY_SEPARATORS: dict[Language, str] = {"fr": ",\u202f", "en": ".,"}
"""Plotly's decimal and thousands separators (``layout.separators``) for axis ticks and hover labels."""


def _minus(text: str) -> str:
    return text.replace("-", MINUS)


def missing(language: Language = DEFAULT_LANGUAGE) -> str:
    return t("value.not_shown", language)


def number(value: float | None, digits: int = 1, language: Language = DEFAULT_LANGUAGE) -> str:
    """``1 234,6``; « non communiqué » when the value is withheld (None)."""
    if value is None:
        return missing(language)
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return _minus(format_decimal(value, format=pattern, locale=LOCALES[language]))


def integer(value: SupportsFloat | None, language: Language = DEFAULT_LANGUAGE) -> str:
    """A whole count: ``1 234`` (a mean of daily counts is rounded, never shown as 272.96666666666664)."""
    return number(None if value is None else round(float(value)), 0, language)


def decimal(value: float | None, language: Language = DEFAULT_LANGUAGE, max_digits: int = 3) -> str:
    """A threshold as written (0.1, 30, 0.25): no padding zeros."""
    if value is None:
        return missing(language)
    return _minus(format_decimal(value, format="#,##0." + "#" * max_digits, locale=LOCALES[language]))


def percent(value: float | None, digits: int = 0, language: Language = DEFAULT_LANGUAGE) -> str:
    """A share in [0, 1]: ``12 %`` (French spaces the sign), ``12%``."""
    if value is None:
        return missing(language)
    sign = "\u00a0%" if language == "fr" else "%"
    pattern = "#,##0" + ("." + "0" * digits if digits else "") + sign
    return _minus(format_percent(value, format=pattern, locale=LOCALES[language]))


def money(value: float | None, language: Language = DEFAULT_LANGUAGE) -> str:
    """Euros without cents: ``−345 647 €`` in French, ``−€345,647`` in English."""
    if value is None:
        return missing(language)
    pattern = "#,##0\u00a0¤" if language == "fr" else "¤#,##0"
    out = format_currency(round(value), "EUR", format=pattern, locale=LOCALES[language], currency_digits=False)
    return _minus(out)


def day(value: date | str | None, language: Language = DEFAULT_LANGUAGE) -> str:
    """``30 nov. 2026`` in French, ``30 Nov 2026`` in English; a month alone (``2026-06``, the data cut-off as
    funders and agencies are released it) as ``juin 2026``."""
    if value is None or value == "":
        return missing(language)
    if isinstance(value, str) and len(value) == 7:
        return month(date.fromisoformat(f"{value}-01"), language)
    parsed = date.fromisoformat(value[:10]) if isinstance(value, str) else value
    return format_date(parsed, format="medium", locale=LOCALES[language])


def month(value: date, language: Language = DEFAULT_LANGUAGE) -> str:
    """``nov. 2026`` / ``Nov 2026``: month axes and tables."""
    return format_skeleton("yMMM", value, locale=LOCALES[language])


def moment(value: datetime | str | None, language: Language = DEFAULT_LANGUAGE) -> str:
    """A timestamp, shown in Paris time: ``30 nov. 2026, 14:05``; an ISO string is parsed first."""
    if value is None or value == "":
        return missing(language)
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return format_datetime(parsed.astimezone(PARIS), format="medium", locale=LOCALES[language]).rsplit(":", 1)[0]


def interval(low: float | None, high: float | None, digits: int = 1, language: Language = DEFAULT_LANGUAGE) -> str:
    """``95 % : −128,0 à 13,7``: the 95% interval, both ends formatted alike."""
    if low is None or high is None:
        return missing(language)
    return t("format.interval", language, low=number(low, digits, language), high=number(high, digits, language))


def money_interval(low: float | None, high: float | None, language: Language = DEFAULT_LANGUAGE) -> str:
    if low is None or high is None:
        return missing(language)
    return t("format.interval", language, low=money(low, language), high=money(high, language))
