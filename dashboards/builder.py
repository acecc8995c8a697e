"""The analysts' study builder, as pure functions: a study file changed within what its schema allows, and
its result with the analyst's cost assumptions (run through the same gate, never a verdict of our own)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl

from pipelines.impact.gate import Effect, Verdict, decide
from pipelines.impact.spec import COVARIATES, MEAN_OUTCOMES, RATIO_OUTCOMES, Design, StudySpec
from pipelines.impact.study import StudyResult, funder_figures, result_rows, unit_costs

OUTCOMES = ("unplanned_admissions", "zarit_change_12m", "rupture_repair_days")
AGENCY_MODELS: tuple[Literal["remote", "proximity", "integrated"], ...] = ("remote", "proximity", "integrated")
SCENARIOS = ("low", "central", "high")


def designs_for(outcome: str) -> list[Design]:
    """The designs the study schema accepts for an outcome (matching is not for ratios; DiD for admissions)."""
    if outcome in RATIO_OUTCOMES:
        return ["dml", "ipw", "overlap", "aipw", *(["did"] if outcome == "unplanned_admissions" else [])]  # type: ignore[list-item]
    return ["dml", "match", "ipw", "overlap", "aipw"]


def estimands_for(outcome: str, design: str) -> list[str]:
    return ["att"] if outcome in RATIO_OUTCOMES or design in ("dml", "did") else ["att", "ate"]


def covariates() -> list[str]:
    return list(COVARIATES)


@dataclass(frozen=True)
class Choices:
    """What the analyst changed; everything else stays as the base study wrote it."""

    outcome: str
    covariates: tuple[str, ...]
    design: str
    estimand: str
    min_age: int
    max_age: int
    agency_models: tuple[str, ...]
    follow_up_days: int
    resamples: int


def build_spec(base: StudySpec, choices: Choices) -> StudySpec:
    """The base study with the analyst's choices, validated by the study schema (``ValueError`` if refused).

    Changing the outcome drops what belongs to the base outcome only (negative controls calibrate admissions;
    a difference-in-differences has no subgroups), as a study file for that outcome would."""
    data: dict[str, Any] = base.model_dump()
    data.update(
        outcome=choices.outcome,
        covariates=list(choices.covariates),
        design=choices.design,
        estimand=choices.estimand,
        follow_up_days=choices.follow_up_days,
        bootstrap=choices.resamples,
        subgroup_bootstrap=min(100, choices.resamples),
        population={
            **data["population"],
            "min_age": choices.min_age,
            "max_age": choices.max_age,
            "agency_models": list(choices.agency_models) or None,
        },
    )
    if choices.outcome != "unplanned_admissions":
        data["negative_controls"] = {}
        data["costs"] = None
    if choices.design == "did":
        data["subgroups"] = []
    return StudySpec.model_validate(data)


def cost_table(stays: Mapping[str, float], months: Mapping[str, float]) -> pl.DataFrame:
    """Unit costs in the reference file's shape, from the analyst's figures for each scenario."""
    reference = unit_costs()
    rows = []
    for item, chosen in (("hospital_stay", stays), ("care_management", months)):
        for scenario in SCENARIOS:
            rows.append({"item": item, "scenario": scenario, "euros": float(chosen[scenario])})
    return pl.DataFrame(rows).join(reference.drop("euros"), on=["item", "scenario"], how="left")


def with_costs(result: StudyResult, costs: pl.DataFrame) -> StudyResult:
    """The result with its money recomputed under ``costs``, and its verdict decided again by the gate from the
    same checks and estimate (a study that paid for itself may not under other costs)."""
    figures = result.funder_figures
    numbers = result.verdict.numbers
    if not figures.get("scenarios") or numbers.get("estimate") is None:
        return result
    effect = Effect(
        numbers["outcome"],
        numbers["unit"],
        numbers["estimate"],
        numbers["ci_low"],
        numbers["ci_high"],
        uncalibrated=tuple(numbers["uncalibrated"].values()) if numbers.get("uncalibrated") else None,
    )
    years = float(figures["treated_person_years"])
    new_figures = funder_figures(effect, years, years * 12, costs)
    savings = {k: float(v["net_savings"]) for k, v in new_figures["scenarios"].items()}
    verdict = decide(result.verdict.checks, effect, savings)
    return StudyResult(**{**result.__dict__, "funder_figures": new_figures, "verdict": verdict})


def rows_and_diagnostics(result: StudyResult) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The result as the study page's rows (main, controls, subgroups) and its diagnostics."""
    rows = result_rows(result)
    main = rows.filter(pl.col("role") == "main")
    diagnostics: dict[str, Any] = json.loads(main["diagnostics"][0] or "{}") if main.height else {}
    return rows, diagnostics


def unit_of(outcome: str) -> str:
    return RATIO_OUTCOMES[outcome].unit if outcome in RATIO_OUTCOMES else MEAN_OUTCOMES[outcome]


def verdict_of(rows: pl.DataFrame) -> Verdict:
    return Verdict.from_json(rows.filter(pl.col("role") == "main")["verdict"][0])


def default_costs() -> tuple[dict[str, float], dict[str, float]]:
    reference = unit_costs()

    def pick(item: str) -> dict[str, float]:
        part = reference.filter(pl.col("item") == item)
        return dict(zip(part["scenario"].to_list(), part["euros"].cast(pl.Float64).to_list(), strict=True))

    return pick("hospital_stay"), pick("care_management")


def sequence(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(values)
