"""Files received and quarantined by reason, and the contract checks: the analysts' quality desk."""

import polars as pl
import streamlit as st

from dashboards import data_access
from dashboards.session import csv_download, page_viewer, snapshot_or_stop

PAGE = "files_and_quality"
viewer = page_viewer(PAGE, "analyst")
st.title("Files and quality")
snapshot_or_stop()
files = data_access.landing_files(viewer)
reasons = data_access.quarantine_reasons(viewer)
checks = data_access.contract_checks(viewer)
cols = st.columns(4)
cols[0].metric("Files received", f"{files.height:,}")
cols[1].metric("Rows received", f"{int(files['rows_in'].sum() or 0):,}")
cols[2].metric("Rows quarantined", f"{int(files['rows_quarantined'].sum() or 0):,}")
failed = checks.filter(~pl.col("success"))
cols[3].metric("Contract checks failing", f"{failed.height} of {checks.height}")

st.subheader("Files by agency")
by_agency = (
    files.group_by("agency_folder", "status")
    .agg(
        pl.len().alias("files"),
        pl.col("rows_in").sum(),
        pl.col("rows_accepted").sum(),
        pl.col("rows_quarantined").sum(),
    )
    .sort("agency_folder", "status")
)
st.dataframe(by_agency, hide_index=True, width="stretch")
with st.expander("Every file"):
    st.dataframe(files, hide_index=True, width="stretch")
    csv_download(viewer, PAGE, files, "landing_files")
st.subheader("Quarantined rows by reason")
if reasons.is_empty():
    st.success("No row quarantined.")
else:
    summary = (
        reasons.group_by("reason", "entity")
        .agg(pl.col("rows_quarantined").sum())
        .sort("rows_quarantined", descending=True)
    )
    st.bar_chart(summary, x="reason", y="rows_quarantined", color="entity", horizontal=True)
    st.dataframe(reasons, hide_index=True, width="stretch")
st.subheader("Contract checks")
st.dataframe(checks, hide_index=True, width="stretch")
st.caption("Counts and shares only: no case value is stored in check results.")
