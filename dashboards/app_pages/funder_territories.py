"""Territories and breakdowns: pre-computed outcome tables by département, GIR band, age band and agency model."""

import json
from pathlib import Path

import polars as pl
import streamlit as st

from dashboards import data_access
from dashboards.figures import france_map, outlines_for_map
from dashboards.session import csv_download, page_viewer, snapshot_or_stop
from pipelines.settings import project_root

PAGE = "territories"
viewer = page_viewer(PAGE, "funder", "analyst")
st.title("Territories and breakdowns")
snapshot_or_stop()
st.caption(
    "Descriptive rates from pre-computed tables, not impact estimates. Counts under 11 are suppressed, "
    "with further cells where needed so that none can be recovered from a total."
)


@st.cache_data(show_spinner=False)
def _outlines(path: str) -> dict[str, object]:
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
        if dimension == "departement":
            outlines = _outlines(str(project_root() / "data" / "reference" / "departements-simplifie.geojson"))
            st.plotly_chart(
                france_map(shown, outlines, "unplanned_rate_per_1000py", "Per 1,000 PY"), width="stretch", key="map"
            )
            st.caption(
                "Outlines: simplified départements of France (data/reference/README.md for source and "
                "licence). Grey: no data or suppressed."
            )
        columns = [
            "dimension_value",
            "persons",
            "person_years",
            "unplanned_admissions",
            "unplanned_rate_per_1000py",
            "unplanned_rate_ci_low",
            "unplanned_rate_ci_high",
            "readmission_rate_per_1000py",
        ]
        st.dataframe(shown.select(columns), hide_index=True, width="stretch")
        csv_download(viewer, PAGE, shown.select(columns), f"outcomes_by_{dimension}")
