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

from pipelines.impact.gate import Verdict
from pipelines.publication.errors import PublicationError
from pipelines.publication.ledger import CellId
from pipelines.publication.protector import Protector, is_small
from pipelines.publication.rules import MIN_CELL
from pipelines.publication.schema import JsonKey, TableSchema, ratio
from pipelines.publication.study_verdicts import release_verdict, size_bounds, unclassified, verdict_problems

STUDIES = "release_studies"
OVERLAP = "release_study_overlap"
ATTRITION = "release_study_attrition"
CURVES = "release_study_curves"

ColumnClass = Literal["label", "safe", "count", "guarded", "rate", "derived", "json", "verdict"]
STUDY_COLUMNS: dict[str, ColumnClass] = {
    "study": "label",
    "role": "label",  # main, negative_control, placebo, subgroup
    "dimension": "label",
    "dimension_value": "label",
    "outcome": "label",
    "study_version": "safe",
    "study_order": "safe",
    "question": "safe",
    "design": "safe",
    "estimand": "safe",
    "unit": "safe",
    "variance_method": "safe",
    "reason": "safe",  # why a negative control cannot be changed by care management (the study file's words)
    "publishable": "safe",  # copied from the verdict, never changed
    "verdict": "verdict",  # study_verdicts.py
    "n_treated": "count",
    "n_comparison": "count",
    "estimate": "guarded",
    "ci_low": "guarded",
    "ci_high": "guarded",
    "standard_error": "guarded",
    "treated_value": "guarded",  # and, per person-year, only on a main row of at least MIN_CELL events
    "counterfactual_value": "derived",  # treated value minus the published effect (calibrated when it is)
    # These give back the observed rate (treated_value): shown only where it is.
    "estimate_calibrated": "rate",
    "ci_low_calibrated": "rate",
    "ci_high_calibrated": "rate",
    "log_rate_ratio": "rate",
    "log_rate_ratio_se": "rate",
    "diagnostics": "json",
    "funder_figures": "json",
}
"""Every column of ``mart_impact_studies`` and how it is released."""

KeyHandling = Literal["label", "safe", "guarded", "rate", "count", "dropped", "table"]
DIAGNOSTIC_KEYS: dict[str, KeyHandling] = {
    "smd_before": "guarded",
    "smd_after": "guarded",
    "variance_ratio_after": "guarded",
    "no_variance": "guarded",  # which covariates every member of both arms shares
    "max_abs_smd_after": "guarded",
    "minimum_detectable_effect": "guarded",
    "e_value": "guarded",
    "e_value_ci": "guarded",
    "covariates": "label",
    "equipoise_share": "dropped",  # a share of an arm: times the arm, a count of episodes
    "effective_sample_size": "dropped",  # the treated arm's is its exact size under ATT weights
    "propensity_range": "dropped",  # the extremes are single people
    "propensity_histogram": "table",  # -> release_study_overlap
    "attrition": "table",  # -> release_study_attrition
    # What the design did (weights.py, did.py, study.py).
    "design.design": "safe",
    "design.learners": "safe",
    "design.variance": "safe",
    "design.weight_rule": "safe",
    "design.max_propensity": "safe",
    "design.truncate_quantile": "safe",
    "design.pre_period_months": "safe",
    "design.washout_months": "safe",
    "design.baseline_months_before": "safe",
    "design.treated_trimmed": "count",  # episodes of each arm left out, and weights truncated: protected,
    "design.comparison_trimmed": "count",  # related to their arm
    "design.weights_truncated": "count",
    "design.rows": "dropped",  # the two arms' sum
    "design.truncation_threshold": "dropped",  # one comparison episode's weight
    "design.dip": "guarded",
    "design.washout_dip": "guarded",
    # Empirical calibration on the negative controls (calibration.py).
    "calibration.systematic_error": "guarded",
    "calibration.scale": "safe",
    "calibration.calibrated_log_rate_ratio": "rate",
    "calibration.calibrated_standard_error": "rate",  # with the calibrated ratio, gives back the interval
    "calibration.mean_from": "safe",  # which controls gave the systematic error's mean: a label
    "calibration.ease_judged": "safe",  # whether the controls could detect max_ease: a yes or no
}
"""Keys of ``diagnostics`` by dotted path; a nested object not listed is classified key by key."""
FUNDER_FIGURE_KEYS: dict[str, KeyHandling | Literal["share"]] = {
    "avoided_unplanned_hospitalisations": "rate",
    "avoided_ci": "rate",
    "scenarios": "rate",
    "calibrated": "safe",
    "treated_person_years": "dropped",
    "treated_severe_at_baseline": "count",
    "comparison_severe_at_baseline": "count",
    "treated_leaving_severe_band": "share",
    "comparison_leaving_severe_band": "share",
}
"""Keys of the studies' funder figures; severe-band shares are rebuilt from protected counts. Avoided stays
and savings come from the published (calibrated) interval: with it they give back the observed rate."""

RATE_ROLES = ("main", "subgroup")
"""Rows whose observed rate may be released (on at least MIN_CELL events): their mart row carries the treated
person-years it rests on (``funder_figures.treated_person_years``)."""
ARM_GUARDS = ("n_treated", "n_comparison")
RATE_GUARDS = (*ARM_GUARDS, "treated_value")
SEVERE_ARMS = ("treated", "comparison")
WHOLE_STUDY_ROLES = ("main", "negative_control", "placebo")
"""Rows of the whole study: they share its arms (and its verdict)."""
TRIMMED = {
    "n_treated": ("design.treated_trimmed",),
    "n_comparison": ("design.comparison_trimmed", "design.weights_truncated"),
}
"""Design counts within each arm (trimmed episodes are left out; truncated weights belong to kept ones)."""


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


def published_effect(row: Mapping[str, Any]) -> float | None:
    """The effect the row's verdict publishes: the calibrated estimate when the verdict says it is calibrated
    (``numbers.calibrated``), else the estimate. The headline, the counterfactual and the history all read it."""
    numbers = json.loads(row.get("verdict") or "{}").get("numbers") or {}
    value = row.get("estimate_calibrated") if numbers.get("calibrated") else row.get("estimate")
    return None if value is None else float(value)


def published_headline(row: Mapping[str, Any]) -> dict[str, Any]:
    """The estimate and interval a released row's verdict published (calibrated when it was), and whether they
    were calibrated: what a funder read as the headline, for the history of releases."""
    numbers = json.loads(row.get("verdict") or "{}").get("numbers") or {}
    figures: dict[str, Any] = {
        k: None if numbers.get(k) is None else float(numbers[k]) for k in ("estimate", "ci_low", "ci_high")
    }
    return {**figures, "calibrated": bool(numbers.get("calibrated"))}


def counterfactual(row: Mapping[str, Any]) -> float | None:
    """What the treated would have had without care management, as published: the observed value minus the
    published effect, so that observed minus counterfactual is the headline effect, never the uncalibrated one."""
    effect = published_effect(row)
    return None if row.get("treated_value") is None or effect is None else row["treated_value"] - effect


def _json_key(handling: str) -> JsonKey:
    if handling == "guarded":
        return JsonKey("guarded", guards=ARM_GUARDS)
    if handling == "rate":
        return JsonKey("guarded", guards=RATE_GUARDS)
    return JsonKey(handling)  # type: ignore[arg-type]


def _classified(keys: Mapping[str, str]) -> dict[str, JsonKey]:
    return {k: _json_key(h) for k, h in keys.items() if h in ("guarded", "rate", "label", "safe", "count")}


STUDIES_SCHEMA = TableSchema(
    name=STUDIES,
    labels=tuple(c for c, k in STUDY_COLUMNS.items() if k == "label"),
    counts=ARM_GUARDS,
    derived={"counterfactual_value": lambda r: counterfactual(r)},
    guarded={
        **{c: ARM_GUARDS for c, k in STUDY_COLUMNS.items() if k == "guarded"},
        **{c: RATE_GUARDS for c, k in STUDY_COLUMNS.items() if k == "rate"},
    },
    safe=(*(c for c, k in STUDY_COLUMNS.items() if k == "safe"), "suppressed"),
    json={
        "diagnostics": _classified(DIAGNOSTIC_KEYS),
        "funder_figures": {**_classified(FUNDER_FIGURE_KEYS), **_severe_keys()},
    },
    structured={"verdict": verdict_problems},
)
OVERLAP_SCHEMA = TableSchema(name=OVERLAP, labels=("study", "arm", "bin"), counts=("episodes",), safe=("bins",))
ATTRITION_SCHEMA = TableSchema(name=ATTRITION, labels=("study", "step"), counts=("episodes",), safe=("step_order",))
CURVES_SCHEMA = TableSchema(
    name=CURVES,
    labels=("study", "curve", "day"),
    guarded=dict.fromkeys(("cumulative_incidence", "ci_low", "ci_high"), ()),
)
"""Curve points carry no count; which days are released is the auditor's to check (``curve_problems``)."""
EVENT_STUDY_MART = "mart_study_event_study"
"""Not released to funders or agencies (monthly event counts by cohort from month -24): analysts only."""


def with_every_column(mart: pl.DataFrame) -> pl.DataFrame:
    """The mart with every classified column (a study that could not be estimated writes fewer)."""
    missing = [c for c in STUDY_COLUMNS if c not in mart.columns]
    return mart.with_columns(pl.lit(None).alias(c) for c in missing)


def _unclassified_keys(document: Mapping[str, Any], known: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Keys of a JSON document not classified by their dotted path (nor as a whole by a parent's)."""
    found = []
    for key, value in document.items():
        path = f"{prefix}{key}"
        if path in known:
            continue
        nested = any(k.startswith(f"{path}.") for k in known)
        if nested and value is None:
            continue
        if nested and isinstance(value, Mapping):
            found += _unclassified_keys(value, known, f"{path}.")
        else:
            found.append(path)
    return found


def check_classified(mart: pl.DataFrame) -> None:
    """Refuse a study mart with a column, a JSON key or a verdict check this module does not classify."""
    unknown = [c for c in mart.columns if c not in STUDY_COLUMNS]
    for column, known in (("diagnostics", DIAGNOSTIC_KEYS), ("funder_figures", FUNDER_FIGURE_KEYS)):
        if column not in mart.columns:
            continue
        for text in mart[column].drop_nulls().to_list():
            unknown += [f"{column}.{k}" for k in _unclassified_keys(json.loads(text), known)]
    if "verdict" in mart.columns:
        for text in mart["verdict"].drop_nulls().to_list():
            unknown += unclassified(text)
    if unknown:
        raise PublicationError(
            "mart_impact_studies has columns or keys not classified for release: "
            + ", ".join(sorted(set(unknown)))
            + " (classify them in pipelines/publication/study_tables.py or study_verdicts.py)"
        )


def published_studies(mart: pl.DataFrame) -> set[str]:
    """Studies whose main row's verdict is publishable (the verdict decides; nothing re-derives it)."""
    main = mart.filter(pl.col("role") == "main")
    return {
        r["study"]
        for r in main.iter_rows(named=True)
        if r["verdict"] is not None and Verdict.from_json(r["verdict"]).publishable
    }


def _labels(row: Mapping[str, Any]) -> tuple[str, ...]:
    return STUDIES_SCHEMA.row_labels(row)


def arm_identity(row: Mapping[str, Any], arm: str) -> tuple[str, ...]:
    """What keys an arm's noise. A whole study's arm (main row, negative controls, placebo) is keyed on the arm
    and its count only: two studies built on the same treated episodes (an admissions study and its DiD twin)
    show the same count with the same noise, where two independent draws let the attacker average them (a
    different count gets fresh noise). A subgroup's arm is keyed on its study and level."""
    if row["role"] in WHOLE_STUDY_ROLES:
        return ("study arm", arm)
    return ("study", row["study"], row["dimension"], row["dimension_value"], arm)


def _treated_value_allowed(row: Mapping[str, Any], figures: Mapping[str, Any], protects: bool) -> bool:
    """An observed rate per person-year with its exposure is a count: released on at least MIN_CELL events,
    on a study's main row or a subgroup's (whose mart row carries the person-years it rests on)."""
    if not protects:
        return True
    if row["role"] not in RATE_ROLES or row["treated_value"] is None:
        return False
    if "person-years" not in str(row["unit"]):
        return row["role"] == "main"
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
    arms: dict[tuple[str, str, str, str, str], dict[str, CellId]] = {}
    for row in mart.iter_rows(named=True):
        labels = _labels(row)
        here = {c: CellId(STUDIES, labels, c) for c in ARM_GUARDS}
        study, dimension, value = row["study"], row["dimension"], row["dimension_value"]
        released = {c: protector.count(here[c], row[c], arm_identity(row, c)) for c in ARM_GUARDS if row[c] is not None}
        shown = all(released.get(c) is not None for c in ARM_GUARDS)
        figures = json.loads(row["funder_figures"] or "{}")
        diagnostics = json.loads(row["diagnostics"] or "{}")
        out: dict[str, Any] = {c: row[c] for c, k in STUDY_COLUMNS.items() if k in ("label", "safe")}
        out |= {c: released.get(c) for c in ARM_GUARDS}
        for column in (c for c, k in STUDY_COLUMNS.items() if k == "guarded"):
            out[column] = row[column] if shown else None
        keep_treated = shown and _treated_value_allowed(row, figures, protector.protects)
        out["treated_value"] = row["treated_value"] if keep_treated else None
        for column in (c for c, k in STUDY_COLUMNS.items() if k == "rate"):
            out[column] = row[column] if out["treated_value"] is not None or not protector.protects else None
        out["verdict"] = release_verdict(row["verdict"], out) if protector.protects else row["verdict"]
        out["counterfactual_value"] = STUDIES_SCHEMA.derived["counterfactual_value"](out)
        out["diagnostics"] = json.dumps(_one_mde(_diagnostics(diagnostics, out, labels, here, protector), out))
        out["funder_figures"] = json.dumps(_figures(figures, out, labels, protector))
        for arm, (low, high) in size_bounds(row["verdict"]).items():
            protector.bound(here[arm], low, high)
        out["suppressed"] = not shown
        rows.append(out)
        arms[(study, row["role"], dimension, value, row["outcome"])] = here
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


def _diagnostics(
    diagnostics: Mapping[str, Any],
    out: Mapping[str, Any],
    labels: tuple[str, ...],
    arms: Mapping[str, CellId],
    protector: Protector,
) -> dict[str, Any]:
    """The diagnostics a row's audience may see. For funders only on a study's main row (the other rows of the
    whole study repeat them); counts of the design are protected and related to their arm."""
    if not protector.protects:
        return {k: v for k, v in diagnostics.items() if DIAGNOSTIC_KEYS.get(k) != "table"}
    if out["role"] != "main":
        return {}
    guards = {"guarded": ARM_GUARDS, "rate": RATE_GUARDS}
    released = _released_keys(diagnostics, DIAGNOSTIC_KEYS, out, guards)
    design = released.get("design")
    for arm, paths in TRIMMED.items():
        cells = []
        for path in paths:
            count = _path_value(diagnostics, path)
            if count is None:
                continue
            cell = CellId(STUDIES, labels, f"diagnostics.{path}")
            identity = ("study design", out["study"], path)
            value = protector.count(cell, count, identity, hide=out[arm] is None)
            if isinstance(design, dict):
                design[path.split(".", 1)[1]] = value
            cells.append(cell)
        protector.relate("episodes trimmed or truncated in an arm", arms[arm], cells)
    return released


def _one_mde(diagnostics: dict[str, Any], out: Mapping[str, Any]) -> dict[str, Any]:
    """One minimum detectable effect per row: the verdict's (from the published estimate's standard error, the
    one the gate and the words use), where the diagnostics carried their own (from the design's standard error,
    a second, different figure on the same page)."""
    if "minimum_detectable_effect" in diagnostics:
        numbers = json.loads(out.get("verdict") or "{}").get("numbers") or {}
        if "minimum_detectable_effect" in numbers:
            diagnostics["minimum_detectable_effect"] = numbers["minimum_detectable_effect"]
    return diagnostics


def _path_value(document: Mapping[str, Any], path: str) -> Any:
    value: Any = document
    for key in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _released_keys(
    document: Mapping[str, Any],
    known: Mapping[str, str],
    row: Mapping[str, Any],
    guards: Mapping[str, tuple[str, ...]],
    prefix: str = "",
) -> dict[str, Any]:
    """The keys a funder may see: safe and label keys, guarded ones where what they rest on is shown; counts are
    left for the caller to protect; dropped and table keys are left out."""
    out: dict[str, Any] = {}
    for key, value in document.items():
        path = f"{prefix}{key}"
        handling = known.get(path)
        if handling is None and value is None:
            out[key] = None
        elif handling is None and isinstance(value, Mapping):
            out[key] = _released_keys(value, known, row, guards, f"{path}.")
        elif handling in ("label", "safe") or (
            handling in guards and all(row.get(g) is not None for g in guards[str(handling)])
        ):
            out[key] = value
    return out


def _figures(
    figures: Mapping[str, Any], out: Mapping[str, Any], labels: tuple[str, ...], protector: Protector
) -> dict[str, Any]:
    if not protector.protects:
        return dict(figures)
    released = _released_keys(
        {k: v for k, v in figures.items() if FUNDER_FIGURE_KEYS[k] != "count"},
        FUNDER_FIGURE_KEYS,
        out,
        {"guarded": ARM_GUARDS, "rate": RATE_GUARDS},
    )
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
        released[total_key] = released_total
        released[f"{arm}_left_severe_band"] = released_left
        released[share_key] = ratio(released_left, released_total)
    return released


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
    lowered = protector.never_rising(cells)  # a step never shows more episodes than the one before it
    for row, cell in zip(rows, cells, strict=True):
        if cell in lowered:
            row["episodes"] = lowered[cell]
    for before, after in itertools.pairwise(cells):
        protector.relate("attrition steps", before, [after])
    if cells:
        protector.relate("attrition to the analysed arms", cells[-1], [arms["n_treated"], arms["n_comparison"]])
    return rows


def _relate_subgroups(
    arms: Mapping[tuple[str, str, str, str, str], Mapping[str, CellId]], protector: Protector
) -> None:
    """Subgroup levels of one breakdown add up to their study's arms; negative controls and the placebo share them."""
    for (study, role, _, _, _), main in arms.items():
        if role != "main":
            continue
        for arm in ARM_GUARDS:
            dimensions = {k[2] for k in arms if k[0] == study and k[1] == "subgroup"}
            for dimension in sorted(dimensions):
                parts = [v[arm] for k, v in arms.items() if k[0] == study and k[1] == "subgroup" and k[2] == dimension]
                protector.relate("subgroups of a study", main[arm], parts)
            shared = [v[arm] for k, v in arms.items() if k[0] == study and k[1] in WHOLE_STUDY_ROLES[1:]]
            for other in shared:
                protector.relate("negative control or placebo of a study", main[arm], [other])


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

    def key(r: Mapping[str, Any]) -> tuple[Any, ...]:
        return r["study"], r["role"], r["dimension"], r["dimension_value"]

    years = {
        key(r): json.loads(r["funder_figures"] or "{}").get("treated_person_years")
        for r in with_every_column(mart).filter(pl.col("role").is_in(RATE_ROLES)).iter_rows(named=True)
    }
    problems = []
    for row in released.filter(pl.col("treated_value").is_not_null()).iter_rows(named=True):
        if "person-years" not in str(row["unit"]):
            continue
        exposure = years.get(key(row))
        if exposure is None or row["treated_value"] * exposure / 1000.0 < MIN_CELL:
            problems.append(f"{STUDIES}.treated_value ({row['study']}, {row['role']}): a rate on fewer than "
                            f"{MIN_CELL} events, or on an exposure the auditor cannot check")  # fmt: skip
    return problems
