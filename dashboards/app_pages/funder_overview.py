"""Funder overview: who the federation follows and unplanned hospitalisation rates."""

import polars as pl
import streamlit as st

from dashboards.data_access import FUNDER, SnapshotMissing, load_table, snapshot_metadata
from dashboards.figures import hospitalisation_rates_chart


def _rate(rates: pl.DataFrame, cohort: str, period: str) -> float | None:
    row = rates.filter((pl.col("cohort") == cohort) & (pl.col("period") == period))
    return None if row.is_empty() else row["unplanned_rate_per_1000py"][0]


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

columns = st.columns(4)
agencies = summary.group_by("agency_model").agg(pl.col("agencies").max())["agencies"].sum()
columns[0].metric("Agencies", f"{agencies:,}")
columns[1].metric("Persons care-managed", _fmt(persons_followed))
columns[2].metric("Person-years followed", _fmt(person_years[0] if len(person_years) else None))
cm_rate = _rate(rates, "care_managed", "after")
cmp_rate = _rate(rates, "comparison", "after")
columns[3].metric(
    "Unplanned admissions / 1,000 PY after index",
    _fmt(cm_rate),
    delta=None if cm_rate is None or cmp_rate is None else f"{cm_rate - cmp_rate:+.0f} vs comparison",
    delta_color="inverse",
    help="Care-managed cohort. The difference with the comparison cohort is not adjusted for case mix.",
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
