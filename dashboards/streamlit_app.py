"""Parcours dashboards: the entry point (``streamlit run dashboards/streamlit_app.py``).

Sign-in first; then the pages of the viewer's role, nothing else (default deny).
"""

# Plotly imports pandas lazily, from whichever session draws first: with two sessions at once one
# of them can see a half-imported module. Importing it here, before any page runs, avoids that.
import pandas  # noqa: F401
import streamlit as st

from dashboards.access import DEMO_ACCESS_FILE, auth_mode, demo_users, load_access_map
from dashboards.session import DEMO_USER_KEY, VIEWER_KEY, current_viewer, sign_out

st.set_page_config(page_title="Parcours", page_icon="🧭", layout="wide")

PAGES = {
    "funder": {
        "Impact": [
            st.Page("app_pages/funder_studies.py", title="Impact studies", icon="🎯", default=True),
            st.Page("app_pages/funder_study.py", title="Study detail", icon="🔎"),
            st.Page("app_pages/funder_overview.py", title="Federation overview", icon="📊"),
            st.Page("app_pages/funder_territories.py", title="Territories and breakdowns", icon="🗺️"),
        ]
    },
    "agency": {
        "My agency": [
            st.Page("app_pages/agency_caseload.py", title="Caseload", icon="📋", default=True),
            st.Page("app_pages/agency_peers.py", title="Outcomes against peers", icon="📈"),
        ]
    },
    "analyst": {
        "Federation": [
            st.Page("app_pages/analyst_files.py", title="Files and quality", icon="🗂️", default=True),
            st.Page("app_pages/analyst_agencies.py", title="All agencies", icon="🏢"),
            st.Page("app_pages/analyst_study_builder.py", title="Study builder", icon="🧪"),
        ],
        "As funders see it": [
            st.Page("app_pages/funder_studies.py", title="Impact studies", icon="🎯"),
            st.Page("app_pages/funder_study.py", title="Study detail", icon="🔎"),
            st.Page("app_pages/funder_overview.py", title="Federation overview", icon="📊"),
            st.Page("app_pages/funder_territories.py", title="Territories and breakdowns", icon="🗺️"),
        ],
        "As an agency sees it": [
            st.Page("app_pages/agency_caseload.py", title="Agency caseload", icon="📋"),
            st.Page("app_pages/agency_peers.py", title="Agency against peers", icon="📈"),
        ],
    },
}


def sign_in_page() -> None:
    st.title("Parcours")
    st.write("Impact of care management, measured with its uncertainty. Please sign in.")
    if auth_mode() == "oidc":
        st.button("Sign in", on_click=st.login, type="primary")
        return
    st.info("Demo mode: choose a demo user (see the README). Nothing here is real data.")
    for viewer in demo_users(load_access_map(DEMO_ACCESS_FILE)):
        if st.button(f"Sign in as {viewer.label}", key=f"demo_{viewer.role}"):
            st.session_state[DEMO_USER_KEY] = viewer.user
            st.rerun()
    with st.form("other_user"):
        other = st.text_input("Or another e-mail address")
        if st.form_submit_button("Sign in") and other:
            st.session_state[DEMO_USER_KEY] = other.strip().lower()
            st.rerun()


def denied_page() -> None:
    st.title("Access denied")
    st.error("Your account has no role in Parcours. Ask the federation's administrator for access.")
    st.button("Sign out", on_click=sign_out)


identity, viewer = current_viewer()
st.session_state[VIEWER_KEY] = viewer
if identity is None:
    st.navigation([st.Page(sign_in_page, title="Sign in", icon="🔑")]).run()
elif viewer is None:
    # current_viewer() has already audited the denial, with the refused identity.
    st.navigation([st.Page(denied_page, title="Access denied", icon="⛔")]).run()
else:
    with st.sidebar:
        st.caption(f"Signed in as {viewer.label}")
        st.button("Sign out", on_click=sign_out)
    st.navigation(PAGES[viewer.role]).run()
