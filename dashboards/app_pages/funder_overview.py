"""Federation overview: who the federation follows and unplanned hospitalisation rates (descriptive)."""

import polars as pl
import streamlit as st

from dashboards import data_access
from dashboards.figures import hospitalisation_rates_chart
from dashboards.session import csv_download, page_viewer, snapshot_or_stop

PAGE = "federation_overview"
viewer = page_viewer(PAGE, "funder", "analyst")
st.title("Federation overview")
meta = snapshot_or_stop()
summary = data_access.federation_summary(viewer)
rates = data_access.hospitalisation_rates(viewer)
st.caption(
    f"Data complete to {meta.get('data_cutoff', '?')} · published {meta.get('published_at', '?')} · "
    f"data contract {meta.get('contract_version', '?')}"
)


def _fmt(value: float | int | None, digits: int = 0) -> str:
    return "suppressed" if value is None else f"{value:,.{digits}f}"


def _rate(cohort: str) -> tuple[float | None, str | None]:
    row = rates.filter((pl.col("cohort") == cohort) & (pl.col("period") == "after"))
    if row.is_empty() or row["unplanned_rate_per_1000py"][0] is None:
        return None, None
    return row["unplanned_rate_per_1000py"][0], (
        f"95% CI {row['unplanned_rate_ci_low'][0]:,.0f} to {row['unplanned_rate_ci_high'][0]:,.0f}"
    )


care_managed = summary.filter(pl.col("cohort") == "care_managed")
persons = None if care_managed["persons"].null_count() else int(care_managed["persons"].sum())
years = rates.filter((pl.col("cohort") == "care_managed") & (pl.col("period") == "after"))["person_years"]
columns = st.columns(5)
columns[0].metric("Agencies", f"{summary.group_by('agency_model').agg(pl.col('agencies').max())['agencies'].sum():,}")
columns[1].metric("Persons care-managed", _fmt(persons))
columns[2].metric("Person-years followed", _fmt(years[0] if len(years) else None))
for column, cohort, label in (
    (columns[3], "care_managed", "Rate, care-managed"),
    (columns[4], "comparison", "Rate, comparison"),
):
    value, interval = _rate(cohort)
    column.metric(
        label,
        _fmt(value),
        delta=interval,
        delta_color="off",
        delta_arrow="off",
        help="Unplanned admissions per 1,000 person-years after the index date. Not adjusted for case mix.",
    )

st.subheader("Unplanned hospitalisations, before and after the index date")
st.plotly_chart(hospitalisation_rates_chart(rates), width="stretch")
st.warning(
    "These rates are descriptive, not an impact estimate: care managers take on people at higher risk, so a "
    "plain comparison of cohorts is biased. See **Impact studies** for adjusted estimates with their diagnostics.",
    icon="⚠️",
)
with st.expander("Cohorts by agency model"):
    st.dataframe(summary, hide_index=True, width="stretch")
    st.caption(
        "Counts under 11 are not shown (empty); the others are perturbed by at most 3 so that none can be "
        "recovered by subtraction, and rates are computed from the counts shown."
    )
    csv_download(viewer, PAGE, summary, "federation_summary")
