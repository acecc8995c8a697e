"""The glossary: the words of care management and of the studies, explained in plain language."""

import streamlit as st

from dashboards.i18n import tr
from dashboards.session import page_viewer

PAGE = "glossary"
TERMS = (
    "gir",
    "apa_pch",
    "zarit",
    "att",
    "doubly_robust",
    "e_value",
    "mde",
    "negative_control",
    "calibrated",
    "cell_key",
    "funnel",
    "observed_expected",
)
page_viewer(PAGE, "funder", "agency", "analyst")
st.title(tr("nav.glossary"))
st.write(tr("glossary.intro"))
for term in TERMS:
    with st.container(border=True):
        st.markdown(f"#### {tr(f'glossary.{term}.title')}")
        st.markdown(tr(f"glossary.{term}.body"))
