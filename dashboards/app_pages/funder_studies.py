"""Impact studies: the list funders read, one line per study that passed its diagnostics."""

import json

import polars as pl
import streamlit as st

from dashboards import data_access
from dashboards.session import page_viewer, snapshot_or_stop

PAGE = "impact_studies"
viewer = page_viewer(PAGE, "funder", "analyst")
st.title("Impact studies")
meta = snapshot_or_stop()
studies = data_access.studies(viewer)
st.caption(f"Published {meta.get('published_at', '?')} · data complete to {meta.get('data_cutoff', '?')}")
if viewer.role == "funder":
    st.write("Only studies whose pre-set diagnostics all pass are published here.")
else:
    st.write("Analyst view: every study, publishable or not (funders see the publishable ones only).")
if studies.is_empty():
    st.info("No study is publishable yet.")
    st.stop()


def _interval(row: dict[str, object]) -> str:
    if row["estimate"] is None:
        return "not estimated"
    return f"{row['estimate']:,.1f} ({row['ci_low']:,.1f} to {row['ci_high']:,.1f}) {row['unit']}"


table = pl.DataFrame(
    {
        "study": studies["study"],
        "question": studies["question"],
        "design": studies["design"],
        "effect (95% interval)": [_interval(r) for r in studies.iter_rows(named=True)],
        "publishable": studies["publishable"],
        "failing diagnostics": ["; ".join(json.loads(f or "[]")) for f in studies["failing_diagnostics"]],
    }
)
st.dataframe(table, hide_index=True, width="stretch")
choice = st.selectbox("Open a study", studies["study"].to_list(), key="open_study")
if st.button("Open", type="primary"):
    st.session_state["study"] = choice
    st.switch_page("app_pages/funder_study.py")
