"""The federation's figures for funders: who is followed, and hospital outcomes by territory and breakdown.

Territories: every région, and a département on its own only when it has at least
``MIN_AREA_PERSONS`` persons in the cohort (its rate then rests on enough people to compare);
smaller départements are counted in their région, so the map is never empty. Rates and their
intervals are computed from the *released* (protected) admissions and person-years.
"""

from __future__ import annotations

import json
from functools import lru_cache

import polars as pl

from pipelines.publication.ledger import CellId
from pipelines.publication.protector import Protector
from pipelines.publication.rules import MIN_AREA_PERSONS
from pipelines.publication.schema import TableSchema, byar_high, byar_low, per_1000
from pipelines.settings import project_root

OUTCOMES = "release_outcomes"
SUMMARY = "release_federation_summary"
OUTCOME_DIMENSIONS = ("all", "agency_model", "region", "departement", "gir_band", "age_band")
"""Breakdowns released to funders (agencies are compared by the agencies' own pages, anonymously)."""

OUTCOMES_SCHEMA = TableSchema(
    name=OUTCOMES,
    labels=("dimension", "dimension_value", "cohort", "period"),
    counts=("persons", "unplanned_admissions", "readmissions_30d"),
    magnitudes=("person_years",),
    derived={
        "unplanned_rate_per_1000py": lambda r: per_1000(r["unplanned_admissions"], r["person_years"]),
        "unplanned_rate_ci_low": lambda r: byar_low(r["unplanned_admissions"], r["person_years"]),
        "unplanned_rate_ci_high": lambda r: byar_high(r["unplanned_admissions"], r["person_years"]),
        "readmission_rate_per_1000py": lambda r: per_1000(r["readmissions_30d"], r["person_years"]),
    },
    safe=("label", "region", "suppressed"),
)
"""``label`` names the area or level; ``region`` is a département's région (a code, for the map)."""

SUMMARY_SCHEMA = TableSchema(
    name=SUMMARY,
    labels=("agency_model", "cohort"),
    counts=("persons", "episodes", "open_episodes"),
    safe=("agencies", "suppressed"),
)
"""``agencies`` counts member agencies of each model, not persons: funders know their members."""


@lru_cache(maxsize=1)
def area_names() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(département -> name, département -> région, région -> name) from the reference table."""
    frame = pl.read_csv(
        project_root() / "data" / "reference" / "departements-regions.csv",
        schema_overrides={"departement": pl.String, "region": pl.String},
    )
    departements = dict(zip(frame["departement"], frame["departement_name"], strict=True))
    parents = dict(zip(frame["departement"], frame["region"], strict=True))
    regions = dict(zip(frame["region"], frame["region_name"], strict=True))
    return departements, parents, regions


OUTLINES = {"region": "regions-simplifie.geojson", "departement": "departements-simplifie.geojson"}


@lru_cache(maxsize=2)
def outlined(level: str) -> frozenset[str]:
    """The areas of a level the map can draw (metropolitan France: overseas areas are in the tables only)."""
    text = (project_root() / "data" / "reference" / OUTLINES[level]).read_text(encoding="utf-8")
    return frozenset(str(f["properties"]["code"]) for f in json.loads(text)["features"])


def _label(dimension: str, value: str) -> str:
    departements, _, regions = area_names()
    if dimension == "region":
        return regions.get(value, value)
    if dimension == "departement":
        return f"{value} {departements[value]}" if value in departements else value
    return value


def shown_departements(outcomes: pl.DataFrame, protect: bool) -> set[tuple[str, str]]:
    """(cohort, département) pairs shown on their own: all for analysts, the large ones for funders."""
    rows = outcomes.filter(pl.col("dimension") == "departement")
    if protect:
        rows = (
            rows.group_by("cohort", "dimension_value")
            .agg(pl.col("persons").max())
            .filter(pl.col("persons") >= MIN_AREA_PERSONS)
        )
    return set(zip(rows["cohort"].to_list(), rows["dimension_value"].to_list(), strict=True))


COSTS = {"all": 100.0, "region": 10.0, "departement": 0.5}
"""Hiding a total or a région costs the map more than hiding a breakdown level or a département."""


def outcomes_table(mart: pl.DataFrame, protector: Protector) -> pl.DataFrame:
    """Hospital outcomes by breakdown, cohort and period, protected; the overview's headline rates are its
    ``all`` rows."""
    _, parents, _ = area_names()
    departements = shown_departements(mart, protector.protects)
    rows = mart.filter(pl.col("dimension").is_in(OUTCOME_DIMENSIONS)).sort(
        "cohort", "period", "dimension", "dimension_value"
    )
    released: list[dict[str, object]] = []
    cells: dict[tuple[str, str, str, str], dict[str, CellId]] = {}
    for row in rows.iter_rows(named=True):
        dimension, value, cohort, period = row["dimension"], row["dimension_value"], row["cohort"], row["period"]
        if dimension == "departement" and (cohort, value) not in departements:
            continue
        labels = (dimension, value, cohort, period)
        cost = COSTS.get(dimension, 1.0)
        here = {c: CellId(OUTCOMES, labels, c) for c in (*OUTCOMES_SCHEMA.counts, *OUTCOMES_SCHEMA.magnitudes)}
        # The same persons are counted in both periods: one identity, so one perturbation for both.
        persons = protector.count(here["persons"], row["persons"], ("outcomes", cohort, dimension, value, "persons"),
                                  cost=cost)  # fmt: skip
        hidden = persons is None
        admissions = protector.count(
            here["unplanned_admissions"], row["unplanned_admissions"],
            ("outcomes", cohort, period, dimension, value, "unplanned_admissions"), hide=hidden, cost=cost,
        )  # fmt: skip
        readmissions = protector.count(
            here["readmissions_30d"], row["readmissions_30d"],
            ("outcomes", cohort, period, dimension, value, "readmissions_30d"), hide=hidden, cost=cost,
        )  # fmt: skip
        years = protector.magnitude(
            here["person_years"], row["person_years"], ("outcomes", cohort, period, dimension, value, "person_years"),
            hide=hidden,
        )  # fmt: skip
        out: dict[str, object] = {
            "dimension": dimension,
            "dimension_value": value,
            "cohort": cohort,
            "period": period,
            "label": _label(dimension, value),
            "region": parents.get(value, "") if dimension == "departement" else "",
            "persons": persons,
            "person_years": years,
            "unplanned_admissions": admissions,
            "readmissions_30d": readmissions,
        }
        for column, derive in OUTCOMES_SCHEMA.derived.items():
            out[column] = derive(out)
        out["suppressed"] = any(out[c] is None for c in (*OUTCOMES_SCHEMA.counts, *OUTCOMES_SCHEMA.magnitudes))
        released.append(out)
        cells[labels] = here
    _relate_outcomes(cells, protector)
    schema = {
        **dict.fromkeys(OUTCOMES_SCHEMA.labels, pl.String),
        "label": pl.String,
        "region": pl.String,
        "persons": pl.Int64,
        "person_years": pl.Float64,
        "unplanned_admissions": pl.Int64,
        "readmissions_30d": pl.Int64,
        **dict.fromkeys(OUTCOMES_SCHEMA.derived, pl.Float64),
        "suppressed": pl.Boolean,
    }
    return pl.DataFrame(released, schema=schema, orient="row")


def _relate_outcomes(cells: dict[tuple[str, str, str, str], dict[str, CellId]], protector: Protector) -> None:
    """Each breakdown adds up to the federation row; the départements shown add up to part of their région."""
    _, parents, _ = area_names()
    for (level, _, cohort, period), total in cells.items():
        if level != "all":
            continue
        for dimension in OUTCOME_DIMENSIONS[1:]:
            parts = [v for k, v in cells.items() if k[0] == dimension and k[2] == cohort and k[3] == period]
            if dimension == "departement":
                for region in {parents.get(k[1], "") for k in cells if k[0] == "departement"}:
                    inside = [
                        v for k, v in cells.items()
                        if k[0] == "departement" and k[2] == cohort and k[3] == period and parents.get(k[1]) == region
                    ]  # fmt: skip
                    key = ("region", region, cohort, period)
                    if inside and key in cells:
                        _relate_measures(protector, "départements of a région", cells[key], inside)
                continue
            _relate_measures(protector, f"breakdown by {dimension}", total, parts)


def _relate_measures(protector: Protector, kind: str, total: dict[str, CellId], parts: list[dict[str, CellId]]) -> None:
    for measure, cell in total.items():
        protector.relate(kind, cell, [p[measure] for p in parts], distinct=measure == "persons")


def summary_table(mart: pl.DataFrame, protector: Protector) -> pl.DataFrame:
    """Agencies, persons, episodes and open episodes by agency model and cohort."""
    released = []
    for row in mart.sort("agency_model", "cohort").iter_rows(named=True):
        labels = (row["agency_model"], row["cohort"])
        here = {c: CellId(SUMMARY, labels, c) for c in SUMMARY_SCHEMA.counts}
        identity = ("summary", *labels)
        persons = protector.count(here["persons"], row["persons"], (*identity, "persons"))
        hidden = persons is None
        episodes = protector.count(here["episodes"], row["episodes"], (*identity, "episodes"), hide=hidden)
        open_episodes = protector.count(here["open_episodes"], row["open_episodes"], (*identity, "open"), hide=hidden)
        # Episodes = persons + repeat episodes = open + closed: neither remainder may come back small.
        protector.relate("persons and their episodes", here["episodes"], [here["persons"]])
        protector.relate("open and closed episodes", here["episodes"], [here["open_episodes"]])
        released.append(
            {
                "agency_model": row["agency_model"],
                "cohort": row["cohort"],
                "agencies": row["agencies"],
                "persons": persons,
                "episodes": episodes,
                "open_episodes": open_episodes,
                "suppressed": None in (persons, episodes, open_episodes),
            }
        )
    schema = {
        "agency_model": pl.String,
        "cohort": pl.String,
        "agencies": pl.Int64,
        "persons": pl.Int64,
        "episodes": pl.Int64,
        "open_episodes": pl.Int64,
        "suppressed": pl.Boolean,
    }
    return pl.DataFrame(released, schema=schema, orient="row")
