"""All agencies side by side (analysts only, not anonymised)."""

import polars as pl
import streamlit as st

from dashboards import data_access
from dashboards.exports import Col, display_table, export_table
from dashboards.figures import funnel_plot
from dashboards.i18n import language, tr
from dashboards.session import csv_download, page_viewer, snapshot_or_stop

PAGE = "all_agencies"
AGENCIES = (
    Col("agency_id", "column.agency"),
    Col("agency_model", "column.agency_model", "code:agency_model"),
    Col("episodes", "column.episodes", "int"),
    Col("person_years", "column.person_years", "int"),
    Col("observed", "column.observed", "int"),
    Col("expected", "column.expected", "num1"),
    Col("observed_over_expected", "column.observed_over_expected", "num2"),
    Col("ratio_ci_low", "column.ci_low", "num2"),
    Col("ratio_ci_high", "column.ci_high", "num2"),
)
viewer = page_viewer(PAGE, "analyst")
st.title(tr("nav.agencies"))
snapshot_or_stop()
agencies = data_access.agencies_overview(viewer)
st.dataframe(display_table(agencies, AGENCIES, language()), hide_index=True, width="stretch")
csv_download(viewer, PAGE, export_table(agencies, AGENCIES, language()), "agencies")
points = agencies.select(
    pl.col("expected").alias("n"), pl.col("observed_over_expected").alias("value"), pl.col("agency_id").alias("peer")
)
st.plotly_chart(
    funnel_plot(points.clear(), points, "–", language(), title=tr("agencies.funnel_title")),
    width="stretch",
    key="funnel_all",
)
st.caption(tr("agencies.caption"))
