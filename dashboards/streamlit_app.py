"""Parcours dashboards: the entry point (``streamlit run dashboards/streamlit_app.py``).

Sign-in first; then the pages of the viewer's role, nothing else (default deny). Every word comes from
the catalogue (``pipelines/presentation``), in the viewer's language (French unless they chose English).
"""

from pathlib import Path

# Plotly imports pandas lazily, from whichever session draws first: with two sessions at once one
# of them can see a half-imported module. Importing it here, before any page runs, avoids that.
import pandas  # noqa: F401
import streamlit as st

from dashboards import data_access
from dashboards.access import DEMO_ACCESS_FILE, Denied, Role, Viewer, auth_mode, demo_users, load_access_map
from dashboards.i18n import language, language_picker, remember_identity, tr
from dashboards.session import DEMO_USER_KEY, VIEWER_KEY, current_viewer, sign_out, viewer_label
from pipelines.presentation.formats import day

# Page icons from the Material Symbols font Streamlit serves itself (an emoji needs a font the reader may lack:
# headless chromium drew empty boxes). The tab's icon is an image file served by this server: left unset, a
# page's Material icon becomes the favicon, and Streamlit fetches that from Google (the browser test forbids it).
FAVICON = Path(st.__file__).parent / "static" / "favicon.png"
st.set_page_config(page_title="Parcours", page_icon=str(FAVICON), layout="wide")


def _page(path: str, title: str, icon: str, default: bool = False) -> st.Page:
    return st.Page(path, title=tr(title), icon=icon, default=default)


def pages(role: Role) -> dict[str, list[st.Page]]:
    """The pages of a role, by section; a page of another role is not registered (no link, no URL)."""
    funder = [
        ("app_pages/funder_studies.py", "nav.studies", ":material/fact_check:"),
        ("app_pages/funder_study.py", "nav.study", ":material/insights:"),
        ("app_pages/funder_overview.py", "nav.overview", ":material/bar_chart:"),
        ("app_pages/funder_territories.py", "nav.territories", ":material/map:"),
    ]
    agency = [
        ("app_pages/agency_caseload.py", "nav.caseload", ":material/assignment_ind:"),
        ("app_pages/agency_peers.py", "nav.peers", ":material/stacked_line_chart:"),
    ]
    glossary = _page("app_pages/glossary.py", "nav.glossary", ":material/menu_book:")
    if role == "funder":
        return {
            tr("nav.section.impact"): [_page(*p, default=i == 0) for i, p in enumerate(funder)],
            tr("nav.section.help"): [glossary],
        }
    if role == "agency":
        return {
            tr("nav.section.agency"): [_page(*p, default=i == 0) for i, p in enumerate(agency)],
            tr("nav.section.help"): [glossary],
        }
    analyst = [
        ("app_pages/analyst_files.py", "nav.files", ":material/folder_open:"),
        ("app_pages/analyst_operations.py", "nav.operations", ":material/event_repeat:"),
        ("app_pages/analyst_agencies.py", "nav.agencies", ":material/apartment:"),
        ("app_pages/analyst_study_builder.py", "nav.builder", ":material/science:"),
    ]
    return {
        tr("nav.section.federation"): [_page(*p, default=i == 0) for i, p in enumerate(analyst)],
        tr("nav.section.as_funders"): [_page(*p) for p in funder],
        tr("nav.section.as_agency"): [_page(*p) for p in agency],
        tr("nav.section.help"): [glossary],
    }


def release_picker(viewer: Viewer) -> None:
    """Which release the pages show: the one in service; an analyst may open a kept one instead."""
    if viewer.role == "analyst":
        names = [str(m["name"]) for m in reversed(data_access.releases(viewer))]  # the latest, in service, first
        if names:
            st.selectbox(tr("app.release_pick"), names, key=data_access.RELEASE_KEY)
    try:
        metadata = data_access.snapshot_metadata(viewer)
    except (data_access.SnapshotMissing, Denied):
        return
    if metadata.get("release"):
        cutoff = metadata.get("data_cutoff", "")
        st.caption(tr("app.release", name=metadata["release"], cutoff=day(cutoff, language()) if cutoff else "?"))


def sign_in_page() -> None:
    st.title("Parcours")
    st.write(tr("signin.tagline"))
    with st.sidebar:
        language_picker(None)
    if auth_mode() == "oidc":
        st.button(tr("signin.button"), on_click=st.login, type="primary")
        return
    st.info(tr("signin.demo"))
    for viewer in demo_users(load_access_map(DEMO_ACCESS_FILE)):
        if st.button(tr("signin.as", user=viewer_label(viewer)), key=f"demo_{viewer.role}"):
            st.session_state[DEMO_USER_KEY] = viewer.user
            st.rerun()
    with st.form("other_user"):
        other = st.text_input(tr("signin.other"))
        if st.form_submit_button(tr("signin.button")) and other:
            st.session_state[DEMO_USER_KEY] = other.strip().lower()
            st.rerun()


def denied_page() -> None:
    st.title(tr("denied.title"))
    st.error(tr("denied.body"))
    st.button(tr("app.sign_out"), on_click=sign_out)


identity, viewer = current_viewer()
remember_identity(identity)
st.session_state[VIEWER_KEY] = viewer
if identity is None:
    st.navigation([st.Page(sign_in_page, title=tr("nav.sign_in"), icon=":material/login:")]).run()
elif viewer is None:
    # current_viewer() has already audited the denial, with the refused identity.
    st.navigation([st.Page(denied_page, title=tr("denied.title"), icon=":material/block:")]).run()
else:
    with st.sidebar:
        st.caption(tr("app.signed_in_as", user=viewer_label(viewer)))
        release_picker(viewer)
        language_picker(identity)
        st.button(tr("app.sign_out"), on_click=sign_out)
    st.navigation(pages(viewer.role)).run()
