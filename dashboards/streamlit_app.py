"""Parcours dashboards: the entry point (``streamlit run dashboards/streamlit_app.py``)."""

import streamlit as st

st.set_page_config(page_title="Parcours", page_icon="🧭", layout="wide")

pages = [
    st.Page("app_pages/funder_overview.py", title="Federation overview", icon="📊", default=True),
]
st.navigation(pages).run()
