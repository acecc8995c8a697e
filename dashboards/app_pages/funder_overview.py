"""Federation overview: who the federation follows and unplanned hospitalisation rates (descriptive)."""

import polars as pl
import streamlit as st

from dashboards import data_access
from dashboards.exports import Col, display_table, export_table
from dashboards.figures import hospitalisation_rates_chart
from dashboards.i18n import language, tr
from dashboards.session import csv_download, page_viewer, snapshot_or_stop
from pipelines.presentation.formats import day, integer, moment

PAGE = "federation_overview"
SUMMARY = (
    Col("agency_model", "column.agency_model", "code:agency_model"),
    Col("cohort", "column.cohort", "code:cohort"),
    Col("agencies", "column.agencies", "int"),
    Col("persons", "column.persons", "int"),
    Col("episodes", "column.episodes", "int"),
    Col("open_episodes", "column.open_episodes", "int"),
)
viewer = page_viewer(PAGE, "funder", "analyst")
st.title(tr("nav.overview"))
meta = snapshot_or_stop()
summary = data_access.federation_summary(viewer)
rates = data_access.hospitalisation_rates(viewer)
st.caption(
    tr(
        "common.release_full",
        cutoff=day(meta.get("data_cutoff"), language()),
        published=moment(meta.get("published_at"), language()),
        contract=meta.get("contract_version", ""),
    )
)


def _rate(cohort: str) -> tuple[float | None, str | None]:
    row = rates.filter((pl.col("cohort") == cohort) & (pl.col("period") == "after"))
    if row.is_empty() or row["unplanned_rate_per_1000py"][0] is None:
        return None, None
    low, high = row["unplanned_rate_ci_low"][0], row["unplanned_rate_ci_high"][0]
    return row["unplanned_rate_per_1000py"][0], tr(
        "format.ci", low=integer(low, language()), high=integer(high, language())
    )


care_managed = summary.filter(pl.col("cohort") == "care_managed")
persons = None if care_managed["persons"].null_count() else int(care_managed["persons"].sum())
years = rates.filter((pl.col("cohort") == "care_managed") & (pl.col("period") == "after"))["person_years"]
agencies = summary.group_by("agency_model").agg(pl.col("agencies").max())["agencies"].sum()
columns = st.columns(5)
columns[0].metric(tr("overview.agencies"), integer(agencies, language()))
columns[1].metric(tr("overview.persons"), integer(persons, language()))
columns[2].metric(tr("overview.person_years"), integer(years[0] if len(years) else None, language()))
for column, cohort, key in (
    (columns[3], "care_managed", "overview.rate_care_managed"),
    (columns[4], "comparison", "overview.rate_comparison"),
):
    value, ci = _rate(cohort)
    column.metric(
        tr(key),
        integer(value, language()),
        delta=ci,
        delta_color="off",
        delta_arrow="off",
        help=tr("overview.rate_help"),
    )

st.plotly_chart(hospitalisation_rates_chart(rates, language()), width="stretch", key="rates")
st.warning(tr("overview.descriptive"), icon="⚠️")
with st.expander(tr("overview.by_model")):
    st.dataframe(display_table(summary, SUMMARY, language()), hide_index=True, width="stretch")
    st.caption(tr("common.disclosure"))
    csv_download(viewer, PAGE, export_table(summary, SUMMARY, language()), "federation_summary")
