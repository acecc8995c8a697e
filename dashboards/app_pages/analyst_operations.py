"""The quarterly cycle for analysts: per agency and export period what arrived, when, what was quarantined and
why, which quarterly exports are late, every ingestion in order, and the releases (the one the pages show)."""

from datetime import date

import polars as pl
import streamlit as st

from dashboards import data_access
from dashboards.exports import Col, display_table, export_table
from dashboards.i18n import language, tr
from dashboards.session import csv_download, page_viewer
from pipelines.operations.late import GRACE_DAYS, late_exports
from pipelines.operations.status import BATCHES, LANDING, QUARANTINE

PAGE = "operations"
PARTITIONS = (
    Col("agency_folder", "column.agency"),
    Col("period", "column.period"),
    Col("files", "column.files", "int"),
    Col("rows_accepted", "column.rows_accepted", "int"),
    Col("rows_quarantined", "column.rows_quarantined", "int"),
    Col("received_at", "column.received_at", "moment"),
)
LATE = (
    Col("agency_folder", "column.agency"),
    Col("quarter", "column.quarter"),
    Col("due", "column.due", "day"),
    Col("days_late", "column.days_late", "int"),
)
REASONS = (
    Col("agency_folder", "column.agency"),
    Col("period", "column.period"),
    Col("entity", "column.entity", "code:entity"),
    Col("reason", "column.reason", "code:reason"),
    Col("column_name", "column.column"),
    Col("rows_quarantined", "column.rows_quarantined", "int"),
)
BATCH_COLUMNS = (
    Col("batch", "column.batch", "int"),
    Col("partitions", "column.partitions"),
    Col("ingestion_day", "column.ingestion_day", "day"),
    Col("files", "column.files", "int"),
)
RELEASES = (
    Col("name", "column.release"),
    Col("published_at", "column.published_at", "moment"),
    Col("data_cutoff", "column.data_cutoff", "day"),
    Col("code", "column.code_version"),
    Col("amendments", "column.amendments", "int"),
)

viewer = page_viewer(PAGE, "analyst")
st.title(tr("nav.operations"))
st.caption(tr("ops.caption"))
try:
    files = data_access.operations_table(viewer, LANDING)
except data_access.SnapshotMissing:
    st.info(tr("ops.none"))
    st.stop()
current = files.filter(pl.col("status") != "superseded")

st.subheader(tr("ops.partitions"))
partitions = (
    current.group_by("agency_folder", "period")
    .agg(
        pl.len().alias("files"),
        pl.col("rows_accepted").sum(),
        pl.col("rows_quarantined").sum(),
        pl.col("ingested_at").max().alias("received_at"),
    )
    .sort("agency_folder", "period")
)
st.dataframe(display_table(partitions, PARTITIONS, language()), hide_index=True, width="stretch")
csv_download(viewer, PAGE, export_table(partitions, PARTITIONS, language()), "partitions")

st.subheader(tr("ops.late"))
late = late_exports(files, date.today())
if late.is_empty():
    st.success(tr("ops.no_late"))
else:
    st.dataframe(display_table(late, LATE, language()), hide_index=True, width="stretch")
st.caption(tr("ops.late_rule", days=GRACE_DAYS))

st.subheader(tr("ops.quarantine"))
reasons = data_access.operations_table(viewer, QUARANTINE)
if reasons.is_empty():
    st.success(tr("files.no_quarantine"))
else:
    by_reason = (
        reasons.group_by("agency_folder", "period", "entity", "reason", "column_name")
        .agg(pl.col("rows_quarantined").sum())
        .sort("agency_folder", "period", "rows_quarantined", descending=[False, False, True])
    )
    st.dataframe(display_table(by_reason, REASONS, language()), hide_index=True, width="stretch")

with st.expander(tr("ops.batches")):
    batches = data_access.operations_table(viewer, BATCHES)
    if not batches.is_empty():
        summary = batches.group_by("batch", "partitions", "ingestion_day").agg(pl.len().alias("files")).sort("batch")
        st.dataframe(display_table(summary, BATCH_COLUMNS, language()), hide_index=True, width="stretch")

st.subheader(tr("ops.releases"))
kept = data_access.releases(viewer)
if not kept:
    st.info(tr("ops.no_release"))
else:
    table = pl.DataFrame(
        [
            {
                "name": m["name"],
                "published_at": m.get("published_at") or None,
                "data_cutoff": m.get("data_cutoff") or None,
                "code": str((m.get("code_version") or {}).get("commit", ""))[:12],
                "amendments": sum(
                    1 for s in m.get("studies") or [] for e in s.get("log", []) if e.get("event") == "amended"
                ),
            }
            for m in reversed(kept)
        ]
    )
    st.dataframe(display_table(table, RELEASES, language()), hide_index=True, width="stretch")
