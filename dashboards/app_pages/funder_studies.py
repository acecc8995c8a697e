"""Impact studies: the list funders read, one line per study that passed its diagnostics."""

import polars as pl
import streamlit as st

from dashboards import data_access
from dashboards.session import page_viewer, snapshot_or_stop
from pipelines.impact.gate import Verdict
from pipelines.impact.messages import headline, published_effect, status

PAGE = "impact_studies"
viewer = page_viewer(PAGE, "funder", "analyst")
st.title("Impact studies")
meta = snapshot_or_stop()
studies = data_access.studies(viewer)
st.caption(f"Published {meta.get('published_at', '?')} · data complete to {meta.get('data_cutoff', '?')}")
if viewer.role == "funder":
    st.write("Only studies the publication gate accepts are published here.")
else:
    st.write("Analyst view: every study, publishable or not (funders see the publishable ones only).")
if studies.is_empty():
    st.info("No study is publishable yet.")
    st.stop()


language = st.session_state.get("language", "fr")
studies = studies.sort(["study_order", "study"])
verdicts = [Verdict.from_json(v) for v in studies["verdict"]]
table = pl.DataFrame(
    {
        "study": studies["study"],
        "question": studies["question"],
        "design": studies["design"],
        # The published interval (calibrated on the negative controls when the study has them), from the verdict.
        "effect (95% interval)": [published_effect(v, language) for v in verdicts],
        "status": [status(v, language) for v in verdicts],
        "verdict": [headline(v, language) for v in verdicts],
    }
)
st.dataframe(table, hide_index=True, width="stretch")
choice = st.selectbox("Open a study", studies["study"].to_list(), key="open_study")
if st.button("Open", type="primary"):
    st.session_state["study"] = choice
    st.switch_page("app_pages/funder_study.py")
