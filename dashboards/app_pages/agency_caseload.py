"""An agency's own caseload: active cases, cases per care manager, case mix, referrals, payers and hours."""

import polars as pl
import streamlit as st

from dashboards import data_access
from dashboards.cached import caseload_figures
from dashboards.exports import Col, display_table, export_table, in_natural_order
from dashboards.i18n import language, tr
from dashboards.session import agency_in_view, csv_download, page_viewer, snapshot_or_stop
from pipelines.presentation.catalogue import label
from pipelines.presentation.formats import integer, number, percent

PAGE = "agency_caseload"
CASELOAD = (
    Col("month_start", "column.month", "month"),
    Col("active_episodes", "column.active_episodes", "int"),
    Col("fte", "column.fte", "num1"),
    Col("episodes_per_fte", "column.episodes_per_fte", "num1"),
)
CASE_MIX = (
    Col("cohort", "column.cohort", "code:cohort"),
    Col("episodes", "column.episodes", "int"),
    Col("persons", "column.persons", "int"),
    Col("age_mean", "column.age_mean", "num1"),
    Col("share_gir_1_2", "column.share_gir_1_2", "pct"),
    Col("share_living_alone", "column.share_living_alone", "pct"),
    Col("days_to_first_contact_median", "column.days_to_first_contact", "num1"),
    Col("days_to_plan_median", "column.days_to_plan", "num1"),
)
DELIVERY = (
    Col("cohort", "column.cohort", "code:cohort"),
    Col("period", "column.period", "code:period"),
    Col("persons", "column.persons", "int"),
    Col("person_months", "column.person_months", "int"),
    Col("hours_granted", "column.hours_granted", "int"),
    Col("hours_delivered", "column.hours_delivered", "int"),
    Col("hours_unused", "column.hours_unused", "int"),
    Col("delivery_ratio", "column.delivery_ratio", "pct"),
)
SOURCES = (
    Col("dimension", "column.dimension", "code:dimension"),
    Col("dimension_value", "column.category"),
    Col("episodes", "column.episodes", "int"),
)

viewer = page_viewer(PAGE, "agency", "analyst")
snapshot_or_stop()
agency = agency_in_view(viewer)
st.title(tr("caseload.title", agency=agency))
caseload = data_access.agency_caseload(viewer, agency)
latest = caseload.drop_nulls("active_episodes").tail(1)
delivery = in_natural_order(data_access.agency_delivery(viewer, agency), {"cohort": "cohort", "period": "period"})
after = delivery.filter((pl.col("cohort") == "care_managed") & (pl.col("period") == "after"))
cols = st.columns(4)
cols[0].metric(tr("caseload.active"), integer(None if latest.is_empty() else latest["active_episodes"][0], language()))
cols[1].metric(
    tr("caseload.per_fte"),
    number(None if latest.is_empty() else latest["episodes_per_fte"][0], 1, language()),
    help=tr("caseload.per_fte_help"),
)
ratio = after["delivery_ratio"][0] if after.height else None
cols[2].metric(tr("caseload.delivered"), percent(ratio, 0, language()), help=tr("caseload.delivered_help"))
cols[3].metric(tr("caseload.unused"), integer(after["hours_unused"][0] if after.height else None, language()))
figures = caseload_figures(viewer, agency, language())
st.plotly_chart(figures["caseload"], width="stretch", key="caseload")

st.subheader(tr("caseload.case_mix"))
mix = data_access.agency_case_mix(viewer, agency)
st.dataframe(display_table(mix, CASE_MIX, language()), hide_index=True, width="stretch")
sources = data_access.agency_referrals_payers(viewer, agency).filter(pl.col("cohort") == "care_managed")
left, right = st.columns(2)
with left:
    st.plotly_chart(figures["referrals"], width="stretch", key="referrals")
with right:
    st.plotly_chart(figures["payers"], width="stretch", key="payers")
st.subheader(tr("caseload.hours"))
st.dataframe(display_table(delivery, DELIVERY, language()), hide_index=True, width="stretch")
st.caption(tr("common.disclosure"))
st.subheader(tr("common.downloads"))
downloads = st.columns(4)
with downloads[0]:
    csv_download(
        viewer,
        PAGE,
        export_table(caseload, CASELOAD, language()),
        f"caseload_{agency}",
        tr("caseload.download_caseload"),
    )
with downloads[1]:
    csv_download(
        viewer, PAGE, export_table(mix, CASE_MIX, language()), f"case_mix_{agency}", tr("caseload.download_mix")
    )
with downloads[2]:
    csv_download(
        viewer, PAGE, export_table(delivery, DELIVERY, language()), f"hours_{agency}", tr("caseload.download_hours")
    )
with downloads[3]:
    words = [label(d, v, language()) for d, v in zip(sources["dimension"], sources["dimension_value"], strict=True)]
    labelled = sources.with_columns(pl.Series("dimension_value", words, dtype=pl.String))
    csv_download(
        viewer,
        PAGE,
        export_table(labelled, SOURCES, language()),
        f"referrals_payers_{agency}",
        tr("caseload.download_sources"),
    )
