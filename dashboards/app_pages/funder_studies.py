"""Impact studies: one line per study, the headline study first, each with its answer in words."""

import polars as pl
import streamlit as st

from dashboards import data_access
from dashboards.i18n import language, tr
from dashboards.session import page_viewer, snapshot_or_stop
from dashboards.study_content import question
from pipelines.impact.gate import Verdict
from pipelines.presentation.formats import day, moment
from pipelines.presentation.verdict import plain_verdict, published_effect, status

PAGE = "impact_studies"
viewer = page_viewer(PAGE, "funder", "analyst")
st.title(tr("nav.studies"))
meta = snapshot_or_stop()
studies = data_access.studies(viewer)
st.caption(
    tr(
        "common.release",
        published=moment(meta.get("published_at"), language()),
        cutoff=day(meta.get("data_cutoff"), language()),
    )
)
st.write(tr("studies.funder_intro") if viewer.role == "funder" else tr("studies.analyst_intro"))
if studies.is_empty():
    st.info(tr("study.none"))
    st.stop()

verdicts = [Verdict.from_json(v) for v in studies["verdict"]]
table = pl.DataFrame(
    {
        tr("studies.column.question"): [question(r, language()) for r in studies.iter_rows(named=True)],
        tr("studies.column.verdict"): [plain_verdict(v, language()) for v in verdicts],
        # The published interval (calibrated on the negative controls when the study has them), from the verdict.
        tr("studies.column.effect"): [published_effect(v, language()) for v in verdicts],
        tr("studies.column.status"): [status(v, language()) for v in verdicts],
    }
)
st.dataframe(table, hide_index=True, width="stretch")
names = studies["study"].to_list()
titles = {r["study"]: question(r, language()) for r in studies.iter_rows(named=True)}


@st.fragment
def open_study() -> None:
    """Choosing a study reruns this picker only, not the table above it."""
    choice = st.selectbox(tr("studies.open"), names, format_func=lambda s: titles[s], key="open_study")
    if st.button(tr("studies.open_button"), type="primary"):
        st.session_state["study"] = choice
        st.switch_page("app_pages/funder_study.py")


open_study()
