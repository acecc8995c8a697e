"""One impact study, verdict first: the answer in words, the effect, the money, the evidence, the charts,
the method and its limits, and the exports (HTML, A4 PDF, CSV)."""

import subprocess
from dataclasses import replace

import polars as pl
import streamlit as st

from dashboards import data_access
from dashboards.cached import study_figures
from dashboards.exports import Col, display_table
from dashboards.i18n import language, tr
from dashboards.reports import html_to_pdf, in_reading_order, study_csv_rows, study_report_html
from dashboards.session import csv_download, page_viewer, snapshot_or_stop
from dashboards.study_content import question, study_content
from dashboards.study_view import show_study
from pipelines.presentation.registration import plan_lines

PAGE = "study_detail"
HISTORY = (
    Col("release", "column.release"),
    Col("published_at", "column.published_at", "moment"),
    Col("estimate", "column.estimate", "num2"),
    Col("ci_low", "column.ci_low", "num2"),
    Col("ci_high", "column.ci_high", "num2"),
    Col("calibrated", "column.calibrated", "yesno"),
)
viewer = page_viewer(PAGE, "funder", "analyst")
meta = snapshot_or_stop()
listed = data_access.studies(viewer)
if listed.is_empty():
    st.info(tr("study.none"))
    st.stop()
names = listed["study"].to_list()  # the headline study first (``order`` in the study files)
titles = {r["study"]: question(r, language()) for r in listed.iter_rows(named=True)}
chosen = st.session_state.get("study")
study = st.selectbox(
    tr("study.choose"),
    names,
    index=names.index(chosen) if chosen in names else 0,
    format_func=lambda s: titles[s],
    key="study_pick",
)
st.session_state["study"] = study


@st.fragment
def study_body(study: str) -> None:
    rows = data_access.study_detail(viewer, study)
    diagnostics = data_access.study_diagnostics(viewer, study)
    log = data_access.study_plan_log(viewer, study)
    content = replace(study_content(rows, diagnostics, meta, language()), plan=plan_lines(log, language()))
    figures = study_figures(viewer, study, language())
    show_study(content, figures, "study")
    history = data_access.headline_history(viewer, study)
    if history.height > 1:
        st.subheader(tr("history.title"))
        st.caption(tr("history.caption"))
        st.table(display_table(history, HISTORY, language()))  # a few rows: one per release
    st.subheader(tr("study.section.export"))
    lang = language()

    def report() -> str:
        return study_report_html(content, figures, lang)

    exports = st.columns(3)
    exports[0].download_button(
        tr("export.html"),
        report,  # written when clicked, not on every rerun (a third of the page's time)
        file_name=f"parcours_{study}.html",
        mime="text/html",
        on_click=lambda: data_access.record(viewer, "export", PAGE, format="html", study=study),
    )
    if exports[1].button(tr("export.prepare_pdf")):
        with st.spinner(tr("export.printing")):
            try:
                st.session_state[f"pdf_{study}_{language()}"] = html_to_pdf(report())
            except (RuntimeError, OSError, subprocess.SubprocessError):
                st.error(tr("export.pdf_failed"))
    if st.session_state.get(f"pdf_{study}_{language()}"):
        exports[1].download_button(
            tr("export.pdf"),
            st.session_state[f"pdf_{study}_{language()}"],
            file_name=f"parcours_{study}.pdf",
            mime="application/pdf",
            on_click=lambda: data_access.record(viewer, "export", PAGE, format="pdf", study=study),
        )
    with exports[2]:
        ordered = in_reading_order(rows.filter(pl.col("study") == study))
        csv_download(viewer, PAGE, study_csv_rows(ordered, language()), f"study_{study}")
        plan = pl.DataFrame({tr("plan.title"): content.plan}, schema={tr("plan.title"): pl.String})
        csv_download(viewer, PAGE, plan, f"plan_{study}", label=tr("plan.download"))


study_body(study)
