"""What a study says, in the order every output says it: the verdict, the effect, the money, the evidence,
the method and its limits. Pure functions of a study's released rows: the page and the report both lay
them out, so that neither can say more, or less, than the other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from pipelines.impact.gate import Verdict
from pipelines.presentation.catalogue import Language, has, label, t
from pipelines.presentation.formats import integer, interval, money, money_interval, number, percent
from pipelines.presentation.verdict import (
    check_rows,
    interval_label,
    plain_verdict,
    published_effect,
    status,
    subgroup_marker,
    unit,
)


@dataclass
class Figure:
    """One headline number: its label, value, the line under it and the help it opens."""

    label: str
    value: str
    detail: str = ""
    help: str = ""


@dataclass
class StudyContent:
    title: str
    provenance: str
    verdict: str
    status: str
    publishable: bool
    effect: list[Figure]
    money: list[Figure]
    money_table: list[dict[str, str]]
    carers: str
    checks: list[dict[str, str]]
    controls: list[dict[str, str]]
    evidence: list[Figure]
    method: list[str] = field(default_factory=list)
    plan: list[str] = field(default_factory=list)
    """The registered plan and its amendments, in words (``pipelines.presentation.registration``)."""


def question(main: dict[str, Any], language: Language) -> str:
    """The study's question in the reader's language (the study file's own words when not translated)."""
    key = f"study.{main.get('study')}.question"
    return t(key, language) if has(key) else str(main.get("question") or main.get("study"))


def provenance(main: dict[str, Any], meta: dict[str, str], language: Language) -> str:
    """Study version, data cut-off, run and release: what a sent report must say it was made from."""
    from pipelines.presentation.formats import day, moment

    return t(
        "study.provenance",
        language,
        study=main.get("study"),
        version=main.get("study_version"),
        cutoff=day(meta.get("data_cutoff"), language),
        published=moment(meta.get("published_at"), language),
        run=str(meta.get("run_id", ""))[:8],
        contract=meta.get("contract_version", ""),
    )


def _effect_figures(main: dict[str, Any], verdict: Verdict, language: Language) -> list[Figure]:
    numbers = verdict.numbers
    study_unit = unit(str(main.get("unit") or numbers.get("unit") or ""), language)
    figures = [
        Figure(
            t("study.effect", language),
            published_effect(verdict, language),
            interval_label(verdict, language),
            t("help.effect", language),
        )
    ]
    if main.get("treated_value") is not None or main.get("counterfactual_value") is not None:
        figures.append(
            Figure(
                t("study.treated_value", language),
                f"{number(main.get('treated_value'), 1, language)} {study_unit}"
                if main.get("treated_value") is not None
                else t("value.not_shown", language),
                t("study.treated_value.detail", language),
            )
        )
        figures.append(
            Figure(
                t("study.counterfactual_value", language),
                f"{number(main.get('counterfactual_value'), 1, language)} {study_unit}"
                if main.get("counterfactual_value") is not None
                else t("value.not_shown", language),
                t("study.counterfactual_value.detail", language),
                t("help.counterfactual", language),
            )
        )
    figures.append(
        Figure(
            t("study.episodes", language),
            t(
                "study.episodes.value",
                language,
                treated=integer(main.get("n_treated"), language),
                comparison=integer(main.get("n_comparison"), language),
            ),
            t("study.episodes.detail", language),
        )
    )
    return figures


def _money(funder: dict[str, Any], language: Language) -> tuple[list[Figure], list[dict[str, str]]]:
    if funder.get("avoided_unplanned_hospitalisations") is None:
        return [], []
    low, high = funder.get("avoided_ci") or (None, None)
    figures = [
        Figure(
            t("money.avoided", language),
            number(funder["avoided_unplanned_hospitalisations"], 0, language),
            t("format.ci", language, low=number(low, 0, language), high=number(high, 0, language)),
            t("help.avoided", language),
        )
    ]
    table = []
    for name in ("low", "central", "high"):
        scenario = (funder.get("scenarios") or {}).get(name)
        if not scenario:
            continue
        net_low, net_high = scenario.get("net_savings_ci") or (None, None)
        probability = scenario.get("probability_net_savings_positive")
        figures.append(
            Figure(
                t("money.net_savings", language, scenario=label("scenario", name, language)),
                money(scenario.get("net_savings"), language),
                t("money.probability", language, probability=percent(probability, 0, language)),
                t(
                    "money.assumptions",
                    language,
                    stay=money(scenario.get("cost_per_stay"), language),
                    month=money(scenario.get("care_management_per_month"), language),
                ),
            )
        )
        table.append(
            {
                t("money.column.scenario", language): label("scenario", name, language),
                t("money.column.stay", language): money(scenario.get("cost_per_stay"), language),
                t("money.column.month", language): money(scenario.get("care_management_per_month"), language),
                t("money.column.net", language): money(scenario.get("net_savings"), language),
                t("money.column.interval", language): money_interval(net_low, net_high, language),
                t("money.column.probability", language): percent(probability, 0, language),
            }
        )
    return figures, table


def _carers(funder: dict[str, Any], language: Language) -> str:
    share = funder.get("treated_leaving_severe_band")
    if share is None:
        return ""
    comparison = funder.get("comparison_leaving_severe_band")
    against = (
        t("carers.against", language, share=percent(comparison, 0, language))
        if comparison is not None
        else t("carers.against_hidden", language)
    )
    return t("carers.severe", language, share=percent(share, 0, language), against=against)


def control_rows(rows: pl.DataFrame, language: Language) -> list[dict[str, str]]:
    """Negative controls and the placebo: outcomes care management cannot change, so their estimate should be
    near zero; each with its interval and why it cannot be changed."""
    out = []
    for r in rows.filter(pl.col("role").is_in(["negative_control", "placebo"])).iter_rows(named=True):
        reason_key = f"control.{r['outcome']}.reason"
        out.append(
            {
                t("controls.column.outcome", language): label("outcome", r["outcome"], language),
                t("controls.column.estimate", language): number(r["estimate"], 1, language),
                t("controls.column.interval", language): interval(r["ci_low"], r["ci_high"], 1, language),
                t("controls.column.zero", language): t(
                    "common.yes"
                    if r["ci_low"] is not None and r["ci_high"] is not None and r["ci_low"] <= 0 <= r["ci_high"]
                    else "common.no",
                    language,
                ),
                t("controls.column.why", language): t(reason_key, language)
                if has(reason_key)
                else str(r.get("reason") or ""),
            }
        )
    return out


def _evidence(diagnostics: dict[str, Any], verdict: Verdict, language: Language) -> list[Figure]:
    study_unit = unit(str(verdict.numbers.get("unit", "")), language)
    mde = verdict.numbers.get("minimum_detectable_effect", diagnostics.get("minimum_detectable_effect"))
    out = [
        Figure(
            t("evidence.mde", language),
            f"{number(mde, 1, language)} {study_unit}" if mde is not None else t("value.not_shown", language),
            t("evidence.mde.detail", language),
            t("help.mde", language),
        )
    ]
    if diagnostics.get("e_value") is not None or diagnostics.get("e_value_ci") is not None:
        out.append(
            Figure(
                t("evidence.e_value", language),
                number(diagnostics.get("e_value"), 2, language),
                t("evidence.e_value_ci", language, value=number(diagnostics.get("e_value_ci"), 2, language)),
                t("help.e_value", language),
            )
        )
    return out


def _method(main: dict[str, Any], diagnostics: dict[str, Any], verdict: Verdict, language: Language) -> list[str]:
    # Covariate labels hold commas (« chutes, 1 à 3 mois avant »): the list is separated by semicolons.
    separator = t("format.list_separator", language)
    covariates = separator.join(label("covariate", c, language) for c in diagnostics.get("covariates") or [])
    paragraphs = [
        t(
            "method.design",
            language,
            design=label("design", main.get("design"), language),
            estimand=label("estimand", main.get("estimand"), language),
        ),
        t("method.covariates", language, covariates=covariates or t("value.not_shown", language)),
        t("method.limits", language),
        t("method.interval.calibrated" if verdict.numbers.get("calibrated") else "method.interval.plain", language),
        t("method.disclosure", language),
    ]
    return paragraphs


def study_content(
    rows: pl.DataFrame, diagnostics: dict[str, Any], meta: dict[str, str], language: Language
) -> StudyContent:
    """Everything said about a study, from its released rows (main, controls, subgroups) and diagnostics."""
    main = rows.filter(pl.col("role") == "main").row(0, named=True)
    verdict = Verdict.from_json(main["verdict"])
    funder = json.loads(main.get("funder_figures") or "{}")
    money_figures, money_table = _money(funder, language)
    return StudyContent(
        title=question(main, language),
        provenance=provenance(main, meta, language),
        verdict=plain_verdict(verdict, language),
        status=status(verdict, language),
        publishable=verdict.publishable,
        effect=_effect_figures(main, verdict, language),
        money=money_figures,
        money_table=money_table,
        carers=_carers(funder, language),
        checks=check_rows(verdict, language),
        controls=control_rows(rows, language),
        evidence=_evidence(diagnostics, verdict, language),
        method=_method(main, diagnostics, verdict, language),
    )


def subgroup_rows(rows: pl.DataFrame, language: Language) -> pl.DataFrame:
    """The main row and subgroups for the forest plot, each subgroup that fails its own checks marked."""
    subgroups = rows.filter(pl.col("role").is_in(["main", "subgroup"]))
    marks = [
        subgroup_marker(Verdict.from_json(v), language) if r == "subgroup" else ""
        for v, r in zip(subgroups["verdict"], subgroups["role"], strict=True)
    ]
    return subgroups.with_columns(pl.Series("mark", marks, dtype=pl.String))
