"""Files received and quarantined by reason, and the contract checks: the analysts' quality desk."""

import polars as pl
import streamlit as st

from dashboards import data_access
from dashboards.exports import Col, display_table, export_table
from dashboards.i18n import language, tr
from dashboards.session import csv_download, page_viewer, snapshot_or_stop
from pipelines.presentation.formats import integer

PAGE = "files_and_quality"
BY_AGENCY = (
    Col("agency_folder", "column.agency"),
    Col("status", "column.status", "code:file_status"),
    Col("files", "column.files", "int"),
    Col("rows_in", "column.rows_in", "int"),
    Col("rows_accepted", "column.rows_accepted", "int"),
    Col("rows_quarantined", "column.rows_quarantined", "int"),
)
FILES = (
    Col("agency_folder", "column.agency"),
    Col("relative_path", "column.file"),
    Col("entity", "column.entity", "code:entity"),
    Col("format", "column.format"),
    Col("status", "column.status", "code:file_status"),
    Col("rows_in", "column.rows_in", "int"),
    Col("rows_accepted", "column.rows_accepted", "int"),
    Col("rows_quarantined", "column.rows_quarantined", "int"),
    Col("ingested_at", "column.ingested_at", "moment"),
)
REASONS = (
    Col("agency_folder", "column.agency"),
    Col("source_file", "column.file"),
    Col("entity", "column.entity", "code:entity"),
    Col("reason", "column.reason", "code:reason"),
    Col("column_name", "column.column"),
    Col("rows_quarantined", "column.rows_quarantined", "int"),
)
CHECKS = (
    Col("entity", "column.entity", "code:entity"),
    Col("category", "column.category", "code:check_category"),
    Col("expectation", "column.expectation", "code:expectation"),
    Col("column_name", "column.column"),
    Col("success", "column.success", "yesno"),
    Col("unexpected_count", "column.unexpected_count", "int"),
    Col("table_rows", "column.table_rows", "int"),
)

viewer = page_viewer(PAGE, "analyst")
st.title(tr("nav.files"))
snapshot_or_stop()
files = data_access.landing_files(viewer)
reasons = data_access.quarantine_reasons(viewer)
checks = data_access.contract_checks(viewer)
cols = st.columns(4)
cols[0].metric(tr("files.received"), integer(files.height, language()))
cols[1].metric(tr("files.rows_in"), integer(files["rows_in"].sum() or 0, language()))
cols[2].metric(tr("files.rows_quarantined"), integer(files["rows_quarantined"].sum() or 0, language()))
failed = checks.filter(~pl.col("success"))
cols[3].metric(
    tr("files.checks_failing"),
    tr("files.of", part=integer(failed.height, language()), whole=integer(checks.height, language())),
)

st.subheader(tr("files.by_agency"))
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
st.dataframe(display_table(by_agency, BY_AGENCY, language()), hide_index=True, width="stretch")
with st.expander(tr("files.every_file")):
    st.dataframe(display_table(files, FILES, language()), hide_index=True, width="stretch")
    csv_download(viewer, PAGE, export_table(files, FILES, language()), "landing_files")
st.subheader(tr("files.quarantine"))
if reasons.is_empty():
    st.success(tr("files.no_quarantine"))
else:
    st.dataframe(
        display_table(reasons.sort("rows_quarantined", descending=True), REASONS, language()),
        hide_index=True,
        width="stretch",
    )
    csv_download(viewer, PAGE, export_table(reasons, REASONS, language()), "quarantine_reasons")
st.subheader(tr("files.contract_checks"))
st.dataframe(display_table(checks, CHECKS, language()), hide_index=True, width="stretch")
st.caption(tr("files.counts_only"))
