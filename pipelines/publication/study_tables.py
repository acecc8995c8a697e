"""Impact studies as released: results and subgroups, propensity overlap, attrition, cumulative incidence.

The study mart is written by the impact engine and grows: every one of its columns, and every
key of its JSON columns, is classified here (``STUDY_COLUMNS``, ``DIAGNOSTIC_KEYS``,
``FUNDER_FIGURE_KEYS``). A column or key that is not is refused: the release fails, naming it.
Counts inside the JSON (histogram bins, attrition steps) become tables of their own, so that
they are protected and related (bins add up to their arm, subgroups to their study) like any
other count. Curves are released only at points where at least ``MIN_CELL`` events have
accrued since the previous released point, and without counts.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from typing import Any, Literal

import polars as pl

from pipelines.publication.errors import PublicationError
from pipelines.publication.ledger import CellId
from pipelines.publication.protector import Protector, is_small
from pipelines.publication.rules import MIN_CELL
from pipelines.publication.schema import JsonKey, TableSchema, ratio

STUDIES = "release_studies"
OVERLAP = "release_study_overlap"
ATTRITION = "release_study_attrition"
CURVES = "release_study_curves"

ColumnClass = Literal["label", "safe", "count", "guarded", "derived", "json"]
STUDY_COLUMNS: dict[str, ColumnClass] = {
    "study": "label",
    "role": "label",
    "dimension": "label",
    "dimension_value": "label",
    "outcome": "label",
    "study_version": "safe",
    "question": "safe",
    "design": "safe",
    "estimand": "safe",
    "unit": "safe",
    "variance_method": "safe",
    "failing_diagnostics": "safe",  # names of failed checks and their thresholds
    "publishable": "safe",
    "n_treated": "count",
    "n_comparison": "count",
    "estimate": "guarded",
    "ci_low": "guarded",
    "ci_high": "guarded",
    "treated_value": "guarded",  # and, per person-year, only on at least MIN_CELL events (rate x exposure)
    "counterfactual_value": "derived",  # treated value minus the estimate
    "diagnostics": "json",
    "funder_figures": "json",
}
"""Every column of ``mart_impact_studies`` and how it is released."""

KeyHandling = Literal["label", "safe", "guarded", "dropped", "table"]
DIAGNOSTIC_KEYS: dict[str, KeyHandling] = {
    "smd_before": "guarded",
    "smd_after": "guarded",
    "variance_ratio_after": "guarded",
    "max_abs_smd_after": "guarded",
    "equipoise_share": "guarded",
    "minimum_detectable_effect": "guarded",
    "e_value": "guarded",
    "e_value_ci": "guarded",
    "covariates": "label",
    "passed": "safe",
    "effective_sample_size": "dropped",  # the treated arm's is its exact size under ATT weights
    "propensity_range": "dropped",  # the extremes are single people
    "propensity_histogram": "table",  # -> release_study_overlap
    "attrition": "table",  # -> release_study_attrition
}
FUNDER_FIGURE_KEYS: dict[str, KeyHandling | Literal["count", "share"]] = {
    "avoided_unplanned_hospitalisations": "guarded",
    "avoided_ci": "guarded",
    "scenarios": "guarded",
    "treated_person_years": "dropped",
    "treated_severe_at_baseline": "count",
    "comparison_severe_at_baseline": "count",
    "treated_leaving_severe_band": "share",
    "comparison_leaving_severe_band": "share",
}
"""Keys of the studies' JSON columns; severe-band shares are rebuilt from protected counts."""

ARM_GUARDS = ("n_treated", "n_comparison")
SEVERE_ARMS = ("treated", "comparison")


def _severe_keys() -> dict[str, JsonKey]:
    keys: dict[str, JsonKey] = {}
    for arm in SEVERE_ARMS:
        keys[f"{arm}_severe_at_baseline"] = JsonKey("count")
        keys[f"{arm}_left_severe_band"] = JsonKey("count")
        keys[f"{arm}_leaving_severe_band"] = JsonKey("derived", derive=_severe_share(arm))
    return keys


def _severe_share(arm: str) -> Callable[[Mapping[str, Any], Mapping[str, Any]], float | None]:
    """The share of an arm's carers who left the severe band, from the released counts."""

    def derive(_row: Mapping[str, Any], figures: Mapping[str, Any]) -> float | None:
        return ratio(figures.get(f"{arm}_left_severe_band"), figures.get(f"{arm}_severe_at_baseline"))

    return derive


STUDIES_SCHEMA = TableSchema(
    name=STUDIES,
    labels=tuple(c for c, k in STUDY_COLUMNS.items() if k == "label"),
    counts=ARM_GUARDS,
    derived={
        "counterfactual_value": lambda r: (
            None if r["treated_value"] is None or r["estimate"] is None else r["treated_value"] - r["estimate"]
        )
    },
    guarded={c: ARM_GUARDS for c, k in STUDY_COLUMNS.items() if k == "guarded"},
    safe=(*(c for c, k in STUDY_COLUMNS.items() if k == "safe"), "suppressed"),
    json={
        "diagnostics": {
            k: JsonKey("guarded", guards=ARM_GUARDS) if h == "guarded" else JsonKey("label" if h == "label" else "safe")
            for k, h in DIAGNOSTIC_KEYS.items()
            if h in ("guarded", "label", "safe")
        },
        "funder_figures": {
            **{k: JsonKey("guarded", guards=ARM_GUARDS) for k, h in FUNDER_FIGURE_KEYS.items() if h == "guarded"},
            **_severe_keys(),
        },
    },
)
OVERLAP_SCHEMA = TableSchema(name=OVERLAP, labels=("study", "arm", "bin"), counts=("episodes",), safe=("bins",))
ATTRITION_SCHEMA = TableSchema(name=ATTRITION, labels=("study", "step"), counts=("episodes",), safe=("step_order",))
CURVES_SCHEMA = TableSchema(
    name=CURVES,
    labels=("study", "curve", "day"),
    guarded=dict.fromkeys(("cumulative_incidence", "ci_low", "ci_high"), ()),
)
"""Curve points carry no count; which days are released is the auditor's to check (``curve_problems``)."""


def with_every_column(mart: pl.DataFrame) -> pl.DataFrame:
    """The mart with every classified column (a study that could not be estimated writes fewer)."""
    missing = [c for c in STUDY_COLUMNS if c not in mart.columns]
    return mart.with_columns(pl.lit(None).alias(c) for c in missing)


def check_classified(mart: pl.DataFrame) -> None:
    """Refuse a study mart with a column or a JSON key this module does not classify."""
    unknown = [c for c in mart.columns if c not in STUDY_COLUMNS]
    for column, known in (("diagnostics", DIAGNOSTIC_KEYS), ("funder_figures", FUNDER_FIGURE_KEYS)):
        if column not in mart.columns:
            continue
        for text in mart[column].drop_nulls().to_list():
            unknown += [f"{column}.{k}" for k in json.loads(text) if k not in known]
    if unknown:
        raise PublicationError(
            "mart_impact_studies has columns or keys not classified for release: "
            + ", ".join(sorted(set(unknown)))
            + " (classify them in pipelines/publication/study_tables.py)"
        )


def published_studies(mart: pl.DataFrame) -> set[str]:
    main = mart.filter((pl.col("role") == "main") & pl.col("publishable").fill_null(False))
    return set(main["study"].to_list())


def _labels(row: Mapping[str, Any]) -> tuple[str, ...]:
    return STUDIES_SCHEMA.row_labels(row)


def _treated_value_allowed(row: Mapping[str, Any], figures: Mapping[str, Any], protects: bool) -> bool:
    """An observed rate per person-year with its exposure is a count: released on at least MIN_CELL events."""
    if not protects:
        return True
    if row["role"] != "main" or row["treated_value"] is None:
        return False
    if "person-years" not in str(row["unit"]):
        return True
    years = figures.get("treated_person_years")
    return years is not None and row["treated_value"] * years / 1000.0 >= MIN_CELL


def studies_tables(mart: pl.DataFrame, curves: pl.DataFrame, protector: Protector) -> dict[str, pl.DataFrame]:
    """The four study tables for one audience (funders: published studies only; analysts: every study)."""
    check_classified(mart)
    mart = with_every_column(mart)
    if protector.protects:
        keep = published_studies(mart)
        mart = mart.filter(pl.col("study").is_in(keep))
        curves = curves.filter(pl.col("study").is_in(keep))
    mart = mart.sort("study", "role", "dimension", "dimension_value", "outcome")
    rows: list[dict[str, Any]] = []
    overlap: list[dict[str, Any]] = []
    attrition: list[dict[str, Any]] = []
    arms: dict[tuple[str, str, str, str], dict[str, CellId]] = {}
    for row in mart.iter_rows(named=True):
        labels = _labels(row)
        here = {c: CellId(STUDIES, labels, c) for c in ARM_GUARDS}
        study, dimension, value = row["study"], row["dimension"], row["dimension_value"]
        released = {
            c: protector.count(here[c], row[c], ("study", study, dimension, value, c))
            for c in ARM_GUARDS
            if row[c] is not None
        }
        shown = all(released.get(c) is not None for c in ARM_GUARDS)
        figures = json.loads(row["funder_figures"] or "{}")
        diagnostics = json.loads(row["diagnostics"] or "{}")
        out: dict[str, Any] = {c: row[c] for c, k in STUDY_COLUMNS.items() if k in ("label", "safe")}
        out |= {c: released.get(c) for c in ARM_GUARDS}
        for column in ("estimate", "ci_low", "ci_high"):
            out[column] = row[column] if shown else None
        keep_treated = shown and _treated_value_allowed(row, figures, protector.protects)
        out["treated_value"] = row["treated_value"] if keep_treated else None
        out["counterfactual_value"] = STUDIES_SCHEMA.derived["counterfactual_value"](out)
        out["diagnostics"] = json.dumps(_diagnostics(diagnostics, shown, protector.protects))
        out["funder_figures"] = json.dumps(_figures(figures, shown, labels, protector))
        out["suppressed"] = not shown
        rows.append(out)
        arms[(study, row["role"], dimension, value)] = here
        if row["role"] == "main" and diagnostics:
            overlap += _overlap(study, diagnostics, here, protector)
            attrition += _attrition(study, diagnostics, here, protector)
    _relate_subgroups(arms, protector)
    return {
        STUDIES: pl.DataFrame(rows, infer_schema_length=None).select(*STUDIES_SCHEMA.columns)
        if rows
        else pl.DataFrame(schema=dict.fromkeys(STUDIES_SCHEMA.columns, pl.String)),
        OVERLAP: pl.DataFrame(
            overlap,
            schema={"study": pl.String, "arm": pl.String, "bin": pl.String, "bins": pl.Int64, "episodes": pl.Int64},
            orient="row",
        ),
        ATTRITION: pl.DataFrame(
            attrition,
            schema={"study": pl.String, "step": pl.String, "step_order": pl.Int64, "episodes": pl.Int64},
            orient="row",
        ),
        CURVES: curve_table(curves, protector.protects),
    }


def _diagnostics(diagnostics: Mapping[str, Any], shown: bool, protects: bool) -> dict[str, Any]:
    if not protects:
        return {k: v for k, v in diagnostics.items() if DIAGNOSTIC_KEYS.get(k) != "table"}
    out = {}
    for key, value in diagnostics.items():
        handling = DIAGNOSTIC_KEYS[key]
        if handling in ("label", "safe") or (handling == "guarded" and shown):
            out[key] = value
    return out


def _figures(figures: Mapping[str, Any], shown: bool, labels: tuple[str, ...], protector: Protector) -> dict[str, Any]:
    if not protector.protects:
        return dict(figures)
    out: dict[str, Any] = {}
    for key, value in figures.items():
        if FUNDER_FIGURE_KEYS[key] == "guarded" and shown:
            out[key] = value
    for arm in SEVERE_ARMS:
        total_key, share_key = f"{arm}_severe_at_baseline", f"{arm}_leaving_severe_band"
        if total_key not in figures:
            continue
        total = int(figures[total_key])
        share = figures.get(share_key)
        left = 0 if share is None else round(share * total)
        total_cell = CellId(STUDIES, labels, f"funder_figures.{total_key}")
        left_cell = CellId(STUDIES, labels, f"funder_figures.{arm}_left_severe_band")
        released_total = protector.count(total_cell, total, ("severe band", *labels, arm))
        # A share whose complement is 1 to 10 tells as much as the complement: hidden with it.
        hide_left = released_total is None or is_small(total - left)
        released_left = protector.count(left_cell, left, ("severe band left", *labels, arm), hide=hide_left)
        protector.relate("carers leaving the severe band", total_cell, [left_cell])
        out[total_key] = released_total
        out[f"{arm}_left_severe_band"] = released_left
        out[share_key] = ratio(released_left, released_total)
    return out


def _overlap(
    study: str, diagnostics: Mapping[str, Any], arms: Mapping[str, CellId], protector: Protector
) -> list[dict[str, Any]]:
    rows = []
    histogram: Mapping[str, list[int]] = diagnostics.get("propensity_histogram") or {}
    for arm, counts in histogram.items():
        total = arms["n_treated" if arm == "treated" else "n_comparison"]
        cells = []
        for index, count in enumerate(counts):
            cell = CellId(OVERLAP, (study, arm, str(index)), "episodes")
            released = protector.count(cell, count, ("overlap", study, arm, str(index)))
            rows.append({"study": study, "arm": arm, "bin": str(index), "bins": len(counts), "episodes": released})
            cells.append(cell)
        protector.relate("propensity histogram bins", total, cells)
    return rows


def _attrition(
    study: str, diagnostics: Mapping[str, Any], arms: Mapping[str, CellId], protector: Protector
) -> list[dict[str, Any]]:
    steps: Mapping[str, int] = diagnostics.get("attrition") or {}
    rows, cells = [], []
    for order, (step, count) in enumerate(steps.items()):
        cell = CellId(ATTRITION, (study, step), "episodes")
        rows.append(
            {"study": study, "step": step, "step_order": order,
             "episodes": protector.count(cell, count, ("attrition", study, step))}
        )  # fmt: skip
        cells.append(cell)
    for before, after in itertools.pairwise(cells):
        protector.relate("attrition steps", before, [after])
    if cells:
        protector.relate("attrition to the analysed arms", cells[-1], [arms["n_treated"], arms["n_comparison"]])
    return rows


def _relate_subgroups(arms: Mapping[tuple[str, str, str, str], Mapping[str, CellId]], protector: Protector) -> None:
    """Subgroup levels of one breakdown add up to their study's arms; negative controls share them."""
    for (study, role, _, _), main in arms.items():
        if role != "main":
            continue
        for arm in ARM_GUARDS:
            dimensions = {k[2] for k in arms if k[0] == study and k[1] == "subgroup"}
            for dimension in sorted(dimensions):
                parts = [v[arm] for k, v in arms.items() if k[0] == study and k[1] == "subgroup" and k[2] == dimension]
                protector.relate("subgroups of a study", main[arm], parts)
            controls = [v[arm] for k, v in arms.items() if k[0] == study and k[1] == "negative_control"]
            for control in controls:
                protector.relate("negative control of a study", main[arm], [control])


def curve_points(curve: pl.DataFrame) -> pl.DataFrame:
    """The points of one curve (sorted by day) that may be released: each at least MIN_CELL events after
    the previous one, with at least MIN_CELL people still at risk. Between them, nothing is drawn but a step."""
    kept, last = [], 0
    for index, (events, at_risk) in enumerate(zip(curve["events"], curve["at_risk"], strict=True)):
        if events - last >= MIN_CELL and at_risk >= MIN_CELL:
            kept.append(index)
            last = events
    return curve[kept]


def curve_table(curves: pl.DataFrame, protects: bool) -> pl.DataFrame:
    columns = ["study", "curve", "day", "cumulative_incidence", "ci_low", "ci_high"]
    curves = curves.sort("study", "curve", "day")
    if protects and curves.height:
        curves = pl.concat([curve_points(part) for part in curves.partition_by("study", "curve", maintain_order=True)])
    return curves.select(
        pl.col("study"), pl.col("curve"), pl.col("day").cast(pl.Int64), *(pl.col(c) for c in columns[3:])
    )


def curve_problems(true_curves: pl.DataFrame, released: pl.DataFrame) -> list[str]:
    """For the auditor: curves whose released points rest on fewer than MIN_CELL events since the previous
    released point, or on fewer than MIN_CELL people at risk."""
    problems = []
    for (study, curve), points in released.group_by("study", "curve", maintain_order=True):
        truth = true_curves.filter((pl.col("study") == study) & (pl.col("curve") == curve))
        events = dict(zip(truth["day"].to_list(), truth["events"].to_list(), strict=True))
        at_risk = dict(zip(truth["day"].to_list(), truth["at_risk"].to_list(), strict=True))
        last = 0
        for day in sorted(points["day"].to_list()):
            if day not in events or events[day] - last < MIN_CELL or at_risk[day] < MIN_CELL:
                problems.append(f"{CURVES} ({study}, {curve}): a released point rests on fewer than {MIN_CELL} events")
                break
            last = events[day]
    return problems


def treated_value_problems(mart: pl.DataFrame, released: pl.DataFrame) -> list[str]:
    """For the auditor: observed rates per person-year released on fewer than MIN_CELL events (with the
    exposure the funder figures give, rate x exposure is the count)."""
    years = {
        r["study"]: json.loads(r["funder_figures"] or "{}").get("treated_person_years")
        for r in with_every_column(mart).filter(pl.col("role") == "main").iter_rows(named=True)
    }
    problems = []
    for row in released.filter(pl.col("treated_value").is_not_null()).iter_rows(named=True):
        if "person-years" not in str(row["unit"]):
            continue
        exposure = years.get(row["study"])
        if row["role"] != "main" or exposure is None or row["treated_value"] * exposure / 1000.0 < MIN_CELL:
            problems.append(f"{STUDIES}.treated_value ({row['study']}, {row['role']}): a rate on fewer than "
                            f"{MIN_CELL} events, or on an exposure the auditor cannot check")  # fmt: skip
    return problems
