"""An agency's own caseload: active cases, cases per care manager, case mix, referrals, payers and hours."""

import polars as pl
import streamlit as st

from dashboards import data_access
from dashboards.figures import caseload_chart, share_bars
from dashboards.session import agency_in_view, csv_download, page_viewer, snapshot_or_stop

PAGE = "agency_caseload"
viewer = page_viewer(PAGE, "agency", "analyst")
snapshot_or_stop()
agency = agency_in_view(viewer)
st.title(f"Caseload · {agency}")
caseload = data_access.agency_caseload(viewer, agency)
latest = caseload.drop_nulls("active_episodes").tail(1)
cols = st.columns(4)
cols[0].metric(
    "Active cases (latest month)", "suppressed" if latest.is_empty() else f"{latest['active_episodes'][0]:,}"
)
cols[1].metric("Cases per care manager (FTE)", "–" if latest.is_empty() else f"{latest['episodes_per_fte'][0]:.1f}")
delivery = data_access.agency_delivery(viewer, agency).filter(
    (pl.col("cohort") == "care_managed") & (pl.col("period") == "after")
)
if delivery.height and delivery["delivery_ratio"][0] is not None:
    cols[2].metric("Hours delivered / granted", f"{delivery['delivery_ratio'][0]:.0%}")
    cols[3].metric("Hours unused", f"{delivery['hours_unused'][0]:,.0f}")
st.plotly_chart(caseload_chart(caseload), width="stretch", key="caseload")

mix = data_access.agency_case_mix(viewer, agency)
st.subheader("Case mix")
st.dataframe(mix.drop("agency_id"), hide_index=True, width="stretch")
sources = data_access.agency_referrals_payers(viewer, agency).filter(pl.col("cohort") == "care_managed")
left, right = st.columns(2)
with left:
    st.subheader("Referral sources")
    st.plotly_chart(
        share_bars(sources.filter(pl.col("dimension") == "referral_source"), "Referred by"),
        width="stretch",
        key="referrals",
    )
with right:
    st.subheader("Payers")
    st.plotly_chart(
        share_bars(sources.filter(pl.col("dimension") == "payer"), "Paid by"), width="stretch", key="payers"
    )
st.subheader("Home help granted and delivered")
st.dataframe(data_access.agency_delivery(viewer, agency), hide_index=True, width="stretch")
csv_download(viewer, PAGE, caseload, f"caseload_{agency}")
st.caption(
    "Counts under 11 are not shown (empty); the others are perturbed by at most 3, and shares and ratios are "
    "computed from the counts shown."
)
