"""Territories and breakdowns: outcomes by région (with a map), département, GIR band, age band and agency model."""

import json
from pathlib import Path
from typing import Any

import polars as pl
import streamlit as st

from dashboards import data_access
from dashboards.access import Viewer
from dashboards.exports import Col, display_table, export_table
from dashboards.figures import outlines_for_map, territory_map
from dashboards.i18n import labeller, language, lb, tr
from dashboards.session import csv_download, page_viewer, snapshot_or_stop
from pipelines.presentation.catalogue import Language, natural_rank
from pipelines.settings import project_root

PAGE = "territories"
OUTLINES = {"region": "regions-simplifie.geojson", "departement": "departements-simplifie.geojson"}


def columns(dimension: str) -> tuple[Col, ...]:
    area = (
        Col("label", f"code.dimension.{dimension}")
        if dimension in OUTLINES
        else Col("dimension_value", f"code.dimension.{dimension}", f"code:{dimension}")
    )
    return (
        area,
        Col("persons", "column.persons", "int"),
        Col("person_years", "column.person_years", "int"),
        Col("unplanned_admissions", "column.unplanned_admissions", "int"),
        Col("unplanned_rate_per_1000py", "column.unplanned_rate", "num1"),
        Col("unplanned_rate_ci_low", "column.ci_low", "num1"),
        Col("unplanned_rate_ci_high", "column.ci_high", "num1"),
        Col("readmission_rate_per_1000py", "column.readmission_rate", "num1"),
    )


viewer = page_viewer(PAGE, "funder", "analyst")
st.title(tr("nav.territories"))
snapshot_or_stop()
st.caption(tr("territories.intro"))


@st.cache_resource(show_spinner=False)
def _outlines(name: str) -> dict[str, Any]:
    path = project_root() / "data" / "reference" / name
    return outlines_for_map(json.loads(Path(path).read_text(encoding="utf-8")))


# Kept as an object, not pickled: unpickling the map validated its 109 outlines again on every rerun.
@st.cache_resource(ttl=300, show_spinner=False, max_entries=64)
def _map(viewer: Viewer, dimension: str, cohort: str, period: str, language: Language, version: float) -> Any:
    del version  # part of the cache key only
    shown = _rows(viewer, dimension, cohort, period)
    title = tr("territories.map_title", area=lb("dimension", dimension))
    return territory_map(shown, _outlines(OUTLINES[dimension]), "unplanned_rate_per_1000py", title, language)


def _rows(viewer: Viewer, dimension: str, cohort: str, period: str) -> pl.DataFrame:
    frame = data_access.outcome_breakdown(viewer, dimension)
    shown = frame.filter((pl.col("cohort") == cohort) & (pl.col("period") == period))
    if dimension not in OUTLINES:
        shown = shown.sort(
            pl.col("dimension_value").map_elements(lambda v: natural_rank(dimension, v), return_dtype=pl.Int64)
        )
    return shown


@st.fragment
def breakdowns() -> None:
    """The selections rerun this fragment only: the page around it is not drawn again."""
    left, right = st.columns(2)
    cohort = (
        left.segmented_control(
            tr("common.cohort"),
            ["care_managed", "comparison"],
            default="care_managed",
            format_func=labeller("cohort"),
            key="cohort",
        )
        or "care_managed"
    )
    period = (
        right.segmented_control(
            tr("common.period"),
            ["before", "after"],  # in time order; the period after enrolment is shown first
            default="after",
            format_func=labeller("period"),
            key="period",
        )
        or "after"
    )
    version = data_access.current_snapshot(viewer).version
    names = [lb("dimension", d) for d in data_access.BREAKDOWNS]
    tabs = st.tabs([n[:1].upper() + n[1:] for n in names])  # « Groupe GIR », not capitalize()'s « Groupe gir »
    for tab, dimension in zip(tabs, data_access.BREAKDOWNS, strict=True):
        with tab:
            shown = _rows(viewer, dimension, cohort, period)
            if dimension in OUTLINES:
                st.plotly_chart(
                    _map(viewer, dimension, cohort, period, language(), version),
                    width="stretch",
                    key=f"map_{dimension}",
                )
                st.caption(
                    tr(
                        "territories.map_caption_departement"
                        if dimension == "departement"
                        else "territories.map_caption"
                    )
                )
            st.dataframe(display_table(shown, columns(dimension), language()), hide_index=True, width="stretch")
            csv_download(viewer, PAGE, export_table(shown, columns(dimension), language()), f"outcomes_by_{dimension}")


breakdowns()
