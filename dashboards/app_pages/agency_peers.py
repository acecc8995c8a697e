"""An agency's outcomes against its anonymous peers, one outcome family per tab: funnel plot, quartile, download
(benchmarking, not causal)."""

import streamlit as st

from dashboards.cached import funnel_figure, peer_families
from dashboards.exports import Col, export_table
from dashboards.i18n import language, lb, tr
from dashboards.session import agency_in_view, csv_download, page_viewer, snapshot_or_stop
from pipelines.presentation.formats import integer, number, percent

PAGE = "agency_peers"
viewer = page_viewer(PAGE, "agency", "analyst")
snapshot_or_stop()
agency = agency_in_view(viewer)
st.title(tr("peers.title", agency=agency))
st.info(tr("peers.intro"))
families = peer_families(viewer, agency)
tabs = st.tabs([lb("family", f.family) for f in families])
for tab, family in zip(tabs, families, strict=True):
    with tab:
        fmt = (lambda v: number(v, 2, language())) if family.kind == "ratio" else (lambda v: percent(v, 0, language()))
        own = family.own.row(0, named=True) if family.own.height else None
        cols = st.columns(3)
        cols[0].metric(
            tr(f"peers.{family.family}.measure"),
            fmt(own["value"]) if own else tr("value.not_shown"),
            delta=tr("format.ci", low=fmt(own["low"]), high=fmt(own["high"]))
            if own and own["low"] is not None
            else None,
            delta_color="off",
            delta_arrow="off",
            help=tr(f"peers.{family.family}.help"),
        )
        cols[1].metric(tr(f"peers.{family.family}.n"), integer(own["n"] if own else None, language()))
        cols[2].metric(
            tr("peers.quartile"),
            tr("value.not_shown") if family.quartile is None else tr("peers.quartile_value", quartile=family.quartile),
            help=tr(f"peers.{family.family}.quartile_help"),
        )
        if family.problem:
            st.warning(tr("peers.not_shown", reason=tr(f"peers.problem.{family.problem}")))
        st.plotly_chart(
            funnel_figure(viewer, agency, family.family, language()), width="stretch", key=f"funnel_{family.family}"
        )
        columns = (
            Col("peer", "column.peer"),
            Col("n", f"peers.{family.family}.n", "num1" if family.kind == "ratio" else "int"),  # expected, or cases
            Col("value", f"peers.{family.family}.measure", "num2" if family.kind == "ratio" else "pct"),
        )
        csv_download(
            viewer,
            PAGE,
            export_table(family.table(tr("peers.this_agency")), columns, language()),
            f"peers_{family.family}_{agency}",
        )
st.caption(tr("peers.caption"))
