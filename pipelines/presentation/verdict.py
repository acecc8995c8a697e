"""A study's verdict in plain words, French (default) or English: every output renders it from here.

The funder pages, the studies list, the study builder, the HTML/PDF/CSV reports, ``parcours
estimate`` and ``parcours studies`` render a stored ``Verdict`` through these functions, so that
they all say the same thing and none can claim more than the gate decided. The words are in the
catalogue (``verdict.*`` and ``check.*`` keys); numbers, money and dates go through ``formats``.

A verdict released to funders (``pipelines/publication/study_verdicts.py``) keeps every check and
the decision but may withhold numbers; it lists them in ``not_shown`` (a check's ``detail``, or the
``numbers``), and they are printed as « non communiqué » / "not shown", never as a guess or "None".
"""

from __future__ import annotations

from typing import Any

from pipelines.impact.gate import Check, Verdict
from pipelines.presentation.catalogue import DEFAULT_LANGUAGE, Language, has, label, t
from pipelines.presentation.formats import MINUS, decimal, money, number, percent

NOT_SHOWN = "not_shown"
"""Where a released verdict lists what it withheld (``pipelines/publication/study_verdicts.py``)."""

UNIT_KEYS = {
    "per 1,000 person-years": "unit.per_1000_person_years",
    "per 1,000 person-years (difference-in-differences)": "unit.per_1000_person_years_did",
    "Zarit points": "unit.zarit_points",
    "days without help per service interruption": "unit.days_without_help_per_interruption",
    "per 1,000 person-years (later minus earlier baseline half)": "unit.per_1000_person_years_placebo",
}
"""The impact engine's units (``pipelines/impact/spec.py``) and their catalogue keys."""

DIGITS = {
    "balance_max_abs_smd": 3,
    "variance_ratio": 2,
    "equipoise_share": 2,
    "expected_absolute_systematic_error": 2,
    "pre_enrolment_dip": 2,
}
"""Decimals of each check's value (counts and sizes: none)."""


def unit(name: str, language: Language = DEFAULT_LANGUAGE) -> str:
    key = UNIT_KEYS.get(name)
    return t(key, language) if key else name


def effect_phrase(numbers: dict[str, Any], language: Language = DEFAULT_LANGUAGE) -> str:
    """« une réduction de X (Y à Z) pour 1 000 années-personnes »: sizes positive, the direction in words."""
    estimate, low, high = numbers["estimate"], numbers["ci_low"], numbers["ci_high"]
    if estimate <= 0:
        key, size, bounds = "verdict.effect.reduction", -estimate, (-high, -low)
    else:
        key, size, bounds = "verdict.effect.increase", estimate, (low, high)
    return t(
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


def _threshold_values(check: Check, language: Language) -> dict[str, str]:
    threshold = check.threshold
    low = high = None
    if isinstance(threshold, list):
        low, high = threshold
    return {
        "threshold": decimal(threshold, language) if isinstance(threshold, int | float) else "",
        "low": decimal(low, language) if low is not None else "",
        "high": decimal(high, language) if high is not None else "",
    }


def check_value(check: Check, language: Language = DEFAULT_LANGUAGE) -> str:
    """A check's value alone, formatted (« moins de 11 » for an arm too small to be stored)."""
    withheld = _withheld(check)
    if check.name in ("treated_episodes", "comparison_episodes") and check.value is None and not check.passed:
        return t("check.fewer_than", language, threshold=_threshold_values(check, language)["threshold"])
    if check.value is None and check.detail.get("no_variance_in") == "comparison":
        return t("check.variance_ratio.infinite", language)
    if check.value is None:
        return t("value.not_shown", language) if "value" in withheld else "—"
    if check.name == "pre_trend_placebo":
        return number(check.value, 1, language)
    return number(check.value, DIGITS.get(check.name, 0), language)


def check_threshold(check: Check, language: Language = DEFAULT_LANGUAGE) -> str:
    """The rule a check's value must meet: « au moins 11 », « sous 0,1 », « entre 0,5 et 2 »."""
    values = _threshold_values(check, language)
    if check.name == "pre_trend_placebo" and isinstance(check.threshold, list):
        values["low"], values["high"] = (number(v, 1, language) for v in check.threshold)
    key = f"check.{check.name}.threshold"
    return t(key, language, **values) if has(key) else ""


def check_sentence(check: Check, language: Language = DEFAULT_LANGUAGE) -> str:
    """The check in one phrase with its value and threshold, as a failed check is listed in a headline."""
    withheld = _withheld(check)
    variant = f"check.{check.name}.{NOT_SHOWN}"
    if has(variant) and withheld & {"value", "threshold", "reason"}:
        return t(variant, language)
    key = f"check.{check.name}"
    if not has(key):
        return check.name
    covariate = check.detail.get("covariate")
    values = {
        **_threshold_values(check, language),
        "value": check_value(check, language),
        "covariate": f" ({label('covariate', covariate, language)})" if covariate else "",
        "ratio": number(check.detail.get("ratio"), 2, language),
        "reason": check.detail.get("reason", ""),
    }
    if check.name == "pre_trend_placebo" and isinstance(check.threshold, list):
        values["low"], values["high"] = (number(v, 1, language) for v in check.threshold)
    if "ratio" in withheld:
        values["ratio"] = t("value.not_shown", language)
    return t(key, language, **values)


def failed_checks(verdict: Verdict, language: Language = DEFAULT_LANGUAGE) -> list[str]:
    return [check_sentence(c, language) for c in verdict.failed]


def status(verdict: Verdict, language: Language = DEFAULT_LANGUAGE) -> str:
    """One line: publishable (every check met) or not, with how many checks failed."""
    if verdict.publishable:
        return t("verdict.status.publishable", language)
    return t("verdict.status.not_publishable", language, count=len(verdict.failed))


def headline(verdict: Verdict, language: Language = DEFAULT_LANGUAGE) -> str:
    """The verdict in one sentence: its kind and its numbers, or the checks that failed."""
    numbers = verdict.numbers
    if verdict.kind == "not_publishable":
        failed = failed_checks(verdict, language)
        if not failed:
            return t("verdict.kind.not_estimated", language)
        return t("verdict.kind.not_publishable", language, failed="; ".join(failed))
    needed: tuple[str, ...] = ("estimate", "ci_low", "ci_high")
    if verdict.kind == "no_effect_detected":
        needed = ("minimum_detectable_effect",)
    if verdict.kind == "costs_more_than_it_saves":
        needed = (*needed, "net_savings")
    if any(numbers.get(k) is None for k in needed):
        return t(f"verdict.kind.{verdict.kind}.{NOT_SHOWN}", language)
    if verdict.kind == "no_effect_detected":
        return t(
            "verdict.kind.no_effect_detected",
            language,
            whether=outcome_question(numbers.get("outcome"), language),
            mde=number(numbers["minimum_detectable_effect"], 1, language),
            unit=unit(numbers["unit"], language),
        )
    effect = effect_phrase(numbers, language)
    if verdict.kind == "costs_more_than_it_saves":
        savings = numbers["net_savings"].values()
        return t(
            "verdict.kind.costs_more_than_it_saves",
            language,
            effect_capitalised=effect[:1].upper() + effect[1:],
            net_low=money(min(savings), language),
            net_high=money(max(savings), language),
        )
    return t("verdict.kind.effect_detected", language, effect=effect)


def outcome_question(outcome: object, language: Language = DEFAULT_LANGUAGE) -> str:
    """« les hospitalisations non programmées ont baissé »: what a study asks, to say we cannot tell it."""
    key = f"outcome.{outcome}.whether"
    return t(key, language) if has(key) else t("outcome.any.whether", language)


def money_sentence(verdict: Verdict, language: Language = DEFAULT_LANGUAGE) -> str:
    """Whether care management paid for itself, across the cost scenarios (empty without cost figures, and
    where the headline already says it costs more than it saves)."""
    savings = verdict.numbers.get("net_savings")
    if not isinstance(savings, dict) or not savings or verdict.kind in ("costs_more_than_it_saves", "not_publishable"):
        return ""
    paying = [k for k, v in savings.items() if v is not None and v > 0]
    if not paying:
        return t("verdict.money.none", language)
    if len(paying) == len(savings):
        return t("verdict.money.all", language)
    scenarios = ", ".join(label("scenario", k, language) for k in paying)
    return t("verdict.money.some", language, scenarios=scenarios)


def plain_verdict(verdict: Verdict, language: Language = DEFAULT_LANGUAGE) -> str:
    """The answer in words, first on every study: the headline, then whether it paid for itself."""
    return " ".join(part for part in (headline(verdict, language), money_sentence(verdict, language)) if part)


def published_effect(verdict: Verdict, language: Language = DEFAULT_LANGUAGE) -> str:
    """The published estimate and its 95% interval, signed, in the study's unit (calibrated when the verdict is):
    ``−84,3 (−130,5 à −38,0) pour 1 000 années-personnes``; « non communiqué » when the release withheld it."""
    numbers = verdict.numbers
    if any(numbers.get(k) is None for k in ("estimate", "ci_low", "ci_high")):
        return t("value.not_shown" if NOT_SHOWN in numbers else "verdict.kind.not_estimated", language)
    return t(
        "verdict.effect.signed",
        language,
        estimate=number(numbers["estimate"], 1, language),
        low=number(numbers["ci_low"], 1, language),
        high=number(numbers["ci_high"], 1, language),
        unit=unit(numbers["unit"], language),
    )


def interval_label(verdict: Verdict, language: Language = DEFAULT_LANGUAGE) -> str:
    key = "verdict.interval.calibrated" if verdict.numbers.get("calibrated") else "verdict.interval.uncalibrated"
    return t(key, language)


def check_rows(verdict: Verdict, language: Language = DEFAULT_LANGUAGE) -> list[dict[str, str]]:
    """Every check as a table row: check, value, threshold, met or not (column names from the catalogue)."""
    return [
        {
            t("verdict.column.check", language): label("check", c.name, language),
            t("verdict.column.value", language): _value_cell(c, language),
            t("verdict.column.threshold", language): check_threshold(c, language),
            t("verdict.column.result", language): t(
                "verdict.result.met" if c.passed else "verdict.result.not_met", language
            ),
        }
        for c in verdict.checks
    ]


def _value_cell(check: Check, language: Language) -> str:
    withheld = _withheld(check)
    if withheld & {"value", "threshold", "reason"} and check.value is None:
        return t("value.not_shown", language)
    value = check_value(check, language)
    covariate = check.detail.get("covariate")
    if covariate and "covariate" not in withheld:
        value += f" ({label('covariate', covariate, language)})"
    constant = check.detail.get("without_variance")
    if constant and "without_variance" not in withheld:
        names = ", ".join(label("covariate", c, language) for c in constant)
        value += f"; {t('check.without_variance', language, covariates=names)}"
    if check.name == "estimation" and check.detail.get("reason") and "reason" not in withheld:
        return t("check.estimation.failed", language)
    return value


def subgroup_marker(verdict: Verdict, language: Language = DEFAULT_LANGUAGE) -> str:
    """ "" for a subgroup that passes its own checks, else the mark every output shows beside it."""
    return "" if verdict.publishable else t("verdict.subgroup.fails", language)


def render(verdict: Verdict, language: Language = DEFAULT_LANGUAGE) -> str:
    """Status and plain verdict, as every plain-text output prints them."""
    return f"{status(verdict, language)} {plain_verdict(verdict, language)}"


def probability_sentence(probability: float | None, language: Language = DEFAULT_LANGUAGE) -> str:
    """« probabilité que les économies nettes soient positives : 0 % »."""
    return t("money.probability", language, probability=percent(probability, 0, language))


__all__ = ["MINUS", "check_rows", "headline", "plain_verdict", "published_effect", "render", "status"]
