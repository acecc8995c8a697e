"""Funder overview: who the federation follows and unplanned hospitalisation rates."""

import polars as pl
import streamlit as st

from dashboards.data_access import FUNDER, SnapshotMissing, load_table, snapshot_metadata
from dashboards.figures import hospitalisation_rates_chart


def _rate(rates: pl.DataFrame, cohort: str, period: str) -> dict[str, float | None]:
    row = rates.filter((pl.col("cohort") == cohort) & (pl.col("period") == period))
    keys = ("unplanned_rate_per_1000py", "unplanned_rate_ci_low", "unplanned_rate_ci_high")
    return dict.fromkeys(keys) if row.is_empty() else {k: row[k][0] for k in keys}


def _interval(rate: dict[str, float | None]) -> str | None:
    low, high = rate["unplanned_rate_ci_low"], rate["unplanned_rate_ci_high"]
    return None if low is None or high is None else f"95% CI {low:,.0f} to {high:,.0f}"


def _fmt(value: float | int | None, digits: int = 0) -> str:
    return "suppressed" if value is None else f"{value:,.{digits}f}"


st.title("Federation overview")
try:
    meta = snapshot_metadata()
    summary = load_table("mart_federation_summary", audience=FUNDER)
    rates = load_table("mart_hospitalisation_rates", audience=FUNDER)
except SnapshotMissing as exc:
    st.info(str(exc))
    st.stop()

st.caption(
    f"Data complete to {meta.get('data_cutoff', '?')} · published {meta.get('published_at', '?')} · "
    f"data contract {meta.get('contract_version', '?')}"
)

care_managed = summary.filter(pl.col("cohort") == "care_managed")
after = rates.filter(pl.col("period") == "after")
persons_followed = int(care_managed["persons"].sum()) if care_managed["persons"].null_count() == 0 else None
person_years = after.filter(pl.col("cohort") == "care_managed")["person_years"]

columns = st.columns(5)
agencies = summary.group_by("agency_model").agg(pl.col("agencies").max())["agencies"].sum()
columns[0].metric("Agencies", f"{agencies:,}")
columns[1].metric("Persons care-managed", _fmt(persons_followed))
columns[2].metric("Person-years followed", _fmt(person_years[0] if len(person_years) else None))
for column, cohort, label in (
    (columns[3], "care_managed", "Rate, care-managed"),
    (columns[4], "comparison", "Rate, comparison"),
):
    rate = _rate(rates, cohort, "after")
    column.metric(
        label,
        _fmt(rate["unplanned_rate_per_1000py"]),
        delta=_interval(rate),
        delta_color="off",
        delta_arrow="off",
        help="Unplanned admissions per 1,000 person-years after the index date, with a 95% interval. "
        "Not adjusted for case mix.",
    )

st.subheader("Unplanned hospitalisations, before and after the index date")
st.plotly_chart(hospitalisation_rates_chart(rates), width="stretch")
st.warning(
    "These rates are descriptive, not an impact estimate: care managers take on people at higher "
    "risk, so a plain comparison of cohorts is biased. Adjusted impact studies, with their "
    "uncertainty and diagnostics, are published separately.",
    icon="⚠️",
)

with st.expander("Cohorts by agency model"):
    st.dataframe(summary.sort(["agency_model", "cohort"]), hide_index=True, width="stretch")
    st.caption("Counts below 11 are suppressed (shown empty) so that no one can be singled out.")
