"""Territories and breakdowns: outcomes by région (with a map), département, GIR band, age band and agency model."""

import json
from pathlib import Path

import polars as pl
import streamlit as st

from dashboards import data_access
from dashboards.figures import outlines_for_map, territory_map
from dashboards.session import csv_download, page_viewer, snapshot_or_stop
from pipelines.settings import project_root

PAGE = "territories"
OUTLINES = {"region": "regions-simplifie.geojson", "departement": "departements-simplifie.geojson"}
COLUMNS = [
    "label",
    "persons",
    "person_years",
    "unplanned_admissions",
    "unplanned_rate_per_1000py",
    "unplanned_rate_ci_low",
    "unplanned_rate_ci_high",
    "readmission_rate_per_1000py",
]
viewer = page_viewer(PAGE, "funder", "analyst")
st.title("Territories and breakdowns")
snapshot_or_stop()
st.caption(
    "Descriptive rates, not impact estimates. Counts under 11 are not shown; the others are slightly perturbed "
    "(by at most 3) so that no hidden count can be recovered by subtraction, and rates and intervals are computed "
    "from the counts shown. A département appears on its own from 50 persons; smaller ones count in their région."
)


@st.cache_data(show_spinner=False)
def _outlines(name: str) -> dict[str, object]:
    path = project_root() / "data" / "reference" / name
    return outlines_for_map(json.loads(Path(path).read_text(encoding="utf-8")))


cohort = st.segmented_control("Cohort", ["care_managed", "comparison"], default="care_managed", key="cohort")
period = st.segmented_control("Period", ["after", "before"], default="after", key="period")
tabs = st.tabs(list(data_access.BREAKDOWNS.values()))
for tab, dimension in zip(tabs, data_access.BREAKDOWNS, strict=True):
    with tab:
        frame = data_access.outcome_breakdown(viewer, dimension)
        shown = frame.filter(
            (pl.col("cohort") == (cohort or "care_managed")) & (pl.col("period") == (period or "after"))
        )
        if dimension in OUTLINES:
            st.plotly_chart(
                territory_map(shown, _outlines(OUTLINES[dimension]), "unplanned_rate_per_1000py", "Per 1,000 PY"),
                width="stretch",
                key=f"map_{dimension}",
            )
            st.caption(
                "Unplanned admissions per 1,000 person-years. Outlines: simplified régions and départements of "
                "metropolitan France (data/reference/README.md for source and licence); overseas régions are in the "
                "table. Grey: too few people to show"
                + (" (those départements count in their région)." if dimension == "departement" else ".")
            )
        st.dataframe(shown.select(COLUMNS), hide_index=True, width="stretch")
        csv_download(viewer, PAGE, shown.select(["dimension_value", *COLUMNS]), f"outcomes_by_{dimension}")
