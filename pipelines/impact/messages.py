"""The verdict in plain language, French (default) and English: the one place its words live.

Every output (the funder pages, the studies list, the HTML/PDF/CSV reports, ``parcours
estimate`` and ``parcours studies``) renders a stored ``Verdict`` through these functions, so
that they all say the same thing and none can claim more than the gate decided. The catalogue
is small on purpose: the dashboards will generalise it; numbers, money and dates are formatted
with Babel (``−345 647 €``, ``30 nov. 2026``).

A verdict released to funders (``pipelines/publication/study_verdicts.py``) keeps every check and
the decision but may withhold numbers; it lists them in ``not_shown`` (a check's ``detail``, or the
``numbers``), and they are printed as "non communiqué" / "not shown", never as a guess or "None".
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from babel.dates import format_date
from babel.numbers import format_currency, format_decimal

from pipelines.impact.gate import Check, Verdict

Language = Literal["fr", "en"]
DEFAULT_LANGUAGE: Language = "fr"
LANGUAGES: tuple[Language, ...] = ("fr", "en")
_BABEL = {"fr": "fr_FR", "en": "en_GB"}
MINUS = "\u2212"

UNITS: dict[str, dict[Language, str]] = {
    "per 1,000 person-years": {"fr": "pour 1\u202f000 années-personnes", "en": "per 1,000 person-years"},
    "per 1,000 person-years (difference-in-differences)": {
        "fr": "pour 1\u202f000 années-personnes (différence de différences)",
        "en": "per 1,000 person-years (difference-in-differences)",
    },
    "Zarit points": {"fr": "points de Zarit", "en": "Zarit points"},
    "days without help per service interruption": {
        "fr": "jours sans aide par interruption de service",
        "en": "days without help per service interruption",
    },
}

MESSAGES: dict[str, dict[Language, str]] = {
    "effect.reduction": {
        "fr": "une réduction de {size} ({low} à {high}) {unit}",
        "en": "a reduction of {size} ({low} to {high}) {unit}",
    },
    "effect.increase": {
        "fr": "une hausse de {size} ({low} à {high}) {unit}",
        "en": "an increase of {size} ({low} to {high}) {unit}",
    },
    "effect.signed": {"fr": "{estimate} ({low} à {high}) {unit}", "en": "{estimate} ({low} to {high}) {unit}"},
    "kind.effect_detected": {"fr": "Effet mis en évidence : {effect}.", "en": "Effect detected: {effect}."},
    "kind.no_effect_detected": {
        "fr": "Aucun effet n'a pu être mis en évidence ; cette étude pouvait détecter des effets supérieurs à "
        "{mde} {unit}.",
        "en": "No effect could be detected; this study could detect effects larger than {mde} {unit}.",
    },
    "kind.costs_more_than_it_saves": {
        "fr": "{effect_capitalised}, mais le suivi coûte plus qu'il ne rapporte dans tous les scénarios de coût "
        "(économies nettes de {net_low} à {net_high}).",
        "en": "{effect_capitalised}, but care management costs more than it saves in every cost scenario "
        "(net savings from {net_low} to {net_high}).",
    },
    "kind.not_publishable": {"fr": "Contrôles non satisfaits : {failed}.", "en": "Checks not met: {failed}."},
    "kind.not_estimated": {"fr": "Rien n'a pu être estimé.", "en": "Nothing could be estimated."},
    "kind.effect_detected.not_shown": {
        "fr": "Effet mis en évidence (chiffres non communiqués : trop peu de personnes ou d'événements).",
        "en": "Effect detected (figures not shown: too few people or events).",
    },
    "kind.no_effect_detected.not_shown": {
        "fr": "Aucun effet n'a pu être mis en évidence (effet minimal détectable non communiqué).",
        "en": "No effect could be detected (minimum detectable effect not shown).",
    },
    "kind.costs_more_than_it_saves.not_shown": {
        "fr": "Effet mis en évidence, mais le suivi coûte plus qu'il ne rapporte dans tous les scénarios de coût "
        "(chiffres non communiqués : trop peu de personnes ou d'événements).",
        "en": "Effect detected, but care management costs more than it saves in every cost scenario (figures not "
        "shown: too few people or events).",
    },
    "value.not_shown": {"fr": "non communiqué", "en": "not shown"},
    "status.publishable": {
        "fr": "Publiable : tous les contrôles fixés à l'avance sont satisfaits.",
        "en": "Publishable: every pre-set check is met.",
    },
    "status.not_publishable": {
        "fr": "Non publiable : {count} contrôle(s) non satisfait(s).",
        "en": "Not publishable: {count} check(s) not met.",
    },
    "interval.calibrated": {
        "fr": "intervalle calibré sur les contrôles négatifs",
        "en": "interval calibrated on the negative controls",
    },
    "interval.uncalibrated": {"fr": "intervalle non calibré", "en": "uncalibrated interval"},
    "result.met": {"fr": "satisfait", "en": "met"},
    "result.not_met": {"fr": "non satisfait", "en": "not met"},
    "subgroup.fails": {"fr": "ne satisfait pas ses propres contrôles", "en": "fails its own checks"},
    "column.check": {"fr": "contrôle", "en": "check"},
    "column.value": {"fr": "valeur", "en": "value"},
    "column.threshold": {"fr": "seuil", "en": "threshold"},
    "column.result": {"fr": "résultat", "en": "result"},
}

CHECKS: dict[str, dict[Language, str]] = {
    "treated_episodes": {
        "fr": "épisodes suivis : {value} (au moins {threshold})",
        "en": "care-managed episodes: {value} (at least {threshold})",
    },
    "comparison_episodes": {
        "fr": "épisodes de comparaison : {value} (au moins {threshold})",
        "en": "comparison episodes: {value} (at least {threshold})",
    },
    "fewer_than": {"fr": "moins de {threshold}", "en": "fewer than {threshold}"},
    "balance_max_abs_smd": {
        "fr": "équilibre des covariables : |SMD| maximal {value}{covariate} (doit rester sous {threshold})",
        "en": "covariate balance: largest |SMD| {value}{covariate} (must stay below {threshold})",
    },
    "variance_ratio": {
        "fr": "rapport de variances le plus éloigné de 1 : {value}{covariate} (entre {low} et {high})",
        "en": "variance ratio farthest from 1: {value}{covariate} (between {low} and {high})",
    },
    "equipoise_share": {
        "fr": "part des épisodes en équipoise : {value} (au moins {threshold})",
        "en": "share of episodes in equipoise: {value} (at least {threshold})",
    },
    "effective_sample_size_treated": {
        "fr": "taille d'échantillon effective, épisodes suivis : {value} (au moins {threshold})",
        "en": "effective sample size, care-managed: {value} (at least {threshold})",
    },
    "effective_sample_size_comparison": {
        "fr": "taille d'échantillon effective, comparaison : {value} (au moins {threshold})",
        "en": "effective sample size, comparison: {value} (at least {threshold})",
    },
    "negative_controls_estimated": {
        "fr": "contrôles négatifs estimés : {value} (au moins {threshold})",
        "en": "negative controls estimated: {value} (at least {threshold})",
    },
    "expected_absolute_systematic_error": {
        "fr": "erreur systématique absolue attendue (EASE) : {value} (au plus {threshold})",
        "en": "expected absolute systematic error (EASE): {value} (at most {threshold})",
    },
    "pre_trend_placebo": {
        "fr": "placebo avant l'inclusion : {value} ({low} à {high}) ; l'intervalle doit contenir 0",
        "en": "pre-enrolment placebo: {value} ({low} to {high}); its interval must contain 0",
    },
    "pre_trend_placebo.not_shown": {
        "fr": "placebo avant l'inclusion : non communiqué ; l'intervalle doit contenir 0",
        "en": "pre-enrolment placebo: not shown; its interval must contain 0",
    },
    "pre_enrolment_dip": {
        "fr": "hausse juste avant la période de référence : rapport {ratio}, borne basse {value} (au plus {threshold})",
        "en": "rise just before the baseline window: ratio {ratio}, lower bound {value} (at most {threshold})",
    },
    "agencies_per_arm": {
        "fr": "agences par bras : {value} (au moins {threshold})",
        "en": "agencies per arm: {value} (at least {threshold})",
    },
    "whole_study_publishable": {
        "fr": "l'étude entière doit être publiable",
        "en": "the whole study must be publishable",
    },
    "estimation": {"fr": "estimation impossible ({reason})", "en": "could not be estimated ({reason})"},
    "estimation.not_shown": {"fr": "estimation impossible", "en": "could not be estimated"},
}
"""One template per check name of ``gate.py`` (``<name>.not_shown``: when the release withheld its numbers)."""

NOT_SHOWN = "not_shown"
"""Where a released verdict lists what it withheld (``pipelines/publication/study_verdicts.py``)."""

DIGITS = {
    "balance_max_abs_smd": 3,
    "variance_ratio": 2,
    "equipoise_share": 2,
    "expected_absolute_systematic_error": 2,
    "pre_enrolment_dip": 2,
}


def text(key: str, language: Language = DEFAULT_LANGUAGE, **values: Any) -> str:
    return MESSAGES[key][language].format(**values)


def number(value: float | None, digits: int = 1, language: Language = DEFAULT_LANGUAGE) -> str:
    if value is None:
        return "—"
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    out = format_decimal(value, format=pattern, locale=_BABEL[language])
    return out.replace("-", MINUS)


def money(value: float, language: Language = DEFAULT_LANGUAGE) -> str:
    """Euros without cents: ``−345 647 €`` in French, ``−€345,647`` in English."""
    out = format_currency(round(value), "EUR", format="#,##0\u00a0¤" if language == "fr" else "¤#,##0",
                          locale=_BABEL[language], currency_digits=False)  # fmt: skip
    return out.replace("-", MINUS)


def day(value: date, language: Language = DEFAULT_LANGUAGE) -> str:
    """``30 nov. 2026`` in French, ``30 Nov 2026`` in English."""
    return format_date(value, format="medium", locale=_BABEL[language])


def unit(name: str, language: Language = DEFAULT_LANGUAGE) -> str:
    return UNITS.get(name, {}).get(language, name)


def effect_phrase(numbers: dict[str, Any], language: Language = DEFAULT_LANGUAGE) -> str:
    """ "une réduction de X (Y à Z) pour 1 000 années-personnes": sizes as positive numbers, the direction in words."""
    estimate, low, high = numbers["estimate"], numbers["ci_low"], numbers["ci_high"]
    if estimate <= 0:
        key, size, bounds = "effect.reduction", -estimate, (-high, -low)
    else:
        key, size, bounds = "effect.increase", estimate, (low, high)
    return text(
        key,
        language,
        size=number(size, 1, language),
        low=number(bounds[0], 1, language),
        high=number(bounds[1], 1, language),
        unit=unit(numbers["unit"], language),
    )


def _withheld(check: Check) -> set[str]:
    listed = check.detail.get(NOT_SHOWN) or []
    return {str(k) for k in listed} if isinstance(listed, list) else set()


def check_sentence(check: Check, language: Language = DEFAULT_LANGUAGE) -> str:
    withheld = _withheld(check)
    variant = CHECKS.get(f"{check.name}.{NOT_SHOWN}", {}).get(language)
    if variant is not None and withheld & {"value", "threshold", "reason"}:
        return variant
    template = CHECKS.get(check.name, {}).get(language)
    if template is None:
        return check.name
    hidden = text("value.not_shown", language)
    digits = DIGITS.get(check.name, 0)
    threshold = check.threshold
    low = high = None
    if isinstance(threshold, list):
        low, high = threshold
    covariate = check.detail.get("covariate")
    values = {
        "value": number(check.value, digits, language),
        "threshold": _as_given(threshold, language) if isinstance(threshold, int | float) else "",
        "low": _as_given(low, language) if low is not None else "",
        "high": _as_given(high, language) if high is not None else "",
        "covariate": f" ({covariate})" if covariate else "",
        "ratio": number(check.detail.get("ratio"), 2, language),
        "reason": check.detail.get("reason", ""),
    }
    if check.name in ("treated_episodes", "comparison_episodes") and check.value is None and not check.passed:
        values["value"] = CHECKS["fewer_than"][language].format(threshold=values["threshold"])
    if check.name == "pre_trend_placebo":
        values["value"] = number(check.value, 1, language)
        values["low"], values["high"] = number(low, 1, language), number(high, 1, language)
    if "value" in withheld and check.value is None:
        values["value"] = hidden
    if "ratio" in withheld:
        values["ratio"] = hidden
    return template.format(**values)


def _as_given(value: float, language: Language) -> str:
    """A threshold as the study file wrote it (0.1, 30, 0.25): no padding zeros."""
    return format_decimal(value, format="#,##0.###", locale=_BABEL[language]).replace("-", MINUS)


def failed_checks(verdict: Verdict, language: Language = DEFAULT_LANGUAGE) -> list[str]:
    return [check_sentence(c, language) for c in verdict.failed]


def status(verdict: Verdict, language: Language = DEFAULT_LANGUAGE) -> str:
    """One line: publishable (every check met) or not, with how many checks failed."""
    if verdict.publishable:
        return text("status.publishable", language)
    return text("status.not_publishable", language, count=len(verdict.failed))


def headline(verdict: Verdict, language: Language = DEFAULT_LANGUAGE) -> str:
    """The verdict in one sentence: its kind and its numbers, or the checks that failed."""
    numbers = verdict.numbers
    if verdict.kind == "not_publishable":
        failed = failed_checks(verdict, language)
        if not failed:
            return text("kind.not_estimated", language)
        return text("kind.not_publishable", language, failed="; ".join(failed))
    needed: tuple[str, ...] = ("estimate", "ci_low", "ci_high")
    if verdict.kind == "no_effect_detected":
        needed = ("minimum_detectable_effect",)
    if verdict.kind == "costs_more_than_it_saves":
        needed = (*needed, "net_savings")
    if any(numbers.get(k) is None for k in needed):
        return text(f"kind.{verdict.kind}.{NOT_SHOWN}", language)
    if verdict.kind == "no_effect_detected":
        return text(
            "kind.no_effect_detected",
            language,
            mde=number(numbers["minimum_detectable_effect"], 1, language),
            unit=unit(numbers["unit"], language),
        )
    effect = effect_phrase(numbers, language)
    if verdict.kind == "costs_more_than_it_saves":
        savings = numbers["net_savings"].values()
        return text(
            "kind.costs_more_than_it_saves",
            language,
            effect_capitalised=effect[:1].upper() + effect[1:],
            net_low=money(min(savings), language),
            net_high=money(max(savings), language),
        )
    return text("kind.effect_detected", language, effect=effect)


def published_effect(verdict: Verdict, language: Language = DEFAULT_LANGUAGE) -> str:
    """The published estimate and its 95% interval, signed, in the study's unit (calibrated when the verdict is):
    ``−84,3 (−130,5 à −38,0) pour 1 000 années-personnes``; "non communiqué" when the release withheld it."""
    numbers = verdict.numbers
    if any(numbers.get(k) is None for k in ("estimate", "ci_low", "ci_high")):
        return text("value.not_shown" if NOT_SHOWN in numbers else "kind.not_estimated", language)
    return text(
        "effect.signed",
        language,
        estimate=number(numbers["estimate"], 1, language),
        low=number(numbers["ci_low"], 1, language),
        high=number(numbers["ci_high"], 1, language),
        unit=unit(numbers["unit"], language),
    )


def interval_label(verdict: Verdict, language: Language = DEFAULT_LANGUAGE) -> str:
    return text("interval.calibrated" if verdict.numbers.get("calibrated") else "interval.uncalibrated", language)


def check_rows(verdict: Verdict, language: Language = DEFAULT_LANGUAGE) -> list[dict[str, str]]:
    """Every check as a table row: the sentence and whether it is met (words from the catalogue)."""
    return [
        {
            text("column.check", language): check_sentence(c, language),
            text("column.result", language): text("result.met" if c.passed else "result.not_met", language),
        }
        for c in verdict.checks
    ]


def subgroup_marker(verdict: Verdict, language: Language = DEFAULT_LANGUAGE) -> str:
    """ "" for a subgroup that passes its own checks, else the mark every output shows beside it."""
    return "" if verdict.publishable else text("subgroup.fails", language)


def render(verdict: Verdict, language: Language = DEFAULT_LANGUAGE) -> str:
    """Status and headline, as every plain-text output prints them."""
    return f"{status(verdict, language)} {headline(verdict, language)}"
