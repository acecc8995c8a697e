"""Streamlit glue for sign-in and page guards: who is looking, and may they see this page.

Production signs in with OIDC through ``st.login`` (configured in ``.streamlit/secrets.toml``,
outside the repository); demo mode (``PARCOURS_AUTH=demo``, set by ``make demo``) offers one
demo user per role. Either way the role and scope come from the server-side access map.
"""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboards import data_access
from dashboards.access import AccessError, Role, Viewer, access_file, auth_mode, load_access_map, resolve_viewer
from dashboards.exports import csv_bytes
from dashboards.i18n import language, lb, tr

VIEWER_KEY = "parcours_viewer"
DEMO_USER_KEY = "parcours_demo_user"
DENIAL_LOGGED_KEY = "parcours_denial_logged"


def signed_in_identity() -> str | None:
    if auth_mode() == "demo":
        return st.session_state.get(DEMO_USER_KEY)
    if not st.user.is_logged_in:
        return None
    email = st.user.get("email")
    return str(email) if email else None


def current_viewer() -> tuple[str | None, Viewer | None]:
    """(identity, viewer): no identity means signed out; an identity without a viewer means denied."""
    identity = signed_in_identity()
    if identity is None:
        return None, None
    try:
        access = load_access_map(access_file())
    except AccessError as exc:
        # The administrator's message names the file or the variable to set; no case value is in it.
        st.error(tr("denied.access_map", detail=str(exc)))
        record_denied_sign_in(identity, "no readable access map")
        return identity, None
    viewer = resolve_viewer(identity, access)
    if viewer is None:
        record_denied_sign_in(identity, "no role in the access map")
    return identity, viewer


def viewer_label(viewer: Viewer) -> str:
    scope = f" · {viewer.agency_id}" if viewer.agency_id else ""
    return f"{viewer.name or viewer.user} ({lb('role', viewer.role)}{scope})"


def record_denied_sign_in(identity: str, reason: str) -> None:
    """Audit a refused sign-in once per session, with the identity that was refused."""
    if st.session_state.get(DENIAL_LOGGED_KEY):
        return
    data_access.record(None, "denied", "sign_in", identity=identity, reason=reason)
    st.session_state[DENIAL_LOGGED_KEY] = True


def sign_out() -> None:
    st.session_state.pop(VIEWER_KEY, None)
    if auth_mode() == "demo":
        st.session_state.pop(DEMO_USER_KEY, None)  # a button callback: the app reruns after it
    else:
        st.logout()


def page_viewer(page: str, *roles: Role) -> Viewer:
    """The viewer of this page, or a stop with a denial: every page starts with this call."""
    viewer: Viewer | None = st.session_state.get(VIEWER_KEY)
    if viewer is None or viewer.role not in roles:
        data_access.record(viewer, "denied", page, identity=signed_in_identity() or "")
        st.error(tr("denied.page"))
        st.stop()
    data_access.record(viewer, "page_view", page, language=language())
    return viewer


def agency_in_view(viewer: Viewer) -> str:
    """An agency user's own agency; for an analyst, the agency picked on the page."""
    if viewer.role == "agency":
        return str(viewer.agency_id)
    return str(st.selectbox(tr("common.agency"), data_access.agency_ids(viewer), key="agency_pick"))


def snapshot_or_stop() -> dict[str, str]:
    try:
        return data_access.snapshot_metadata(st.session_state.get(VIEWER_KEY))
    except data_access.SnapshotMissing:
        st.info(tr("common.no_snapshot"))
        st.stop()


def csv_download(viewer: Viewer, page: str, frame: pl.DataFrame, name: str, label: str | None = None) -> None:
    """A CSV download of an already scoped and protected table, in the viewer's language (French: semicolons and
    decimal commas, as French spreadsheets read them); the export is audited when clicked."""
    lang = language()
    st.download_button(
        label or tr("common.download_csv"),
        data=lambda: csv_bytes(frame, lang),  # written when clicked, not on every rerun
        file_name=f"{name}.csv",
        mime="text/csv",
        on_click=lambda: data_access.record(viewer, "export", page, format="csv", table=name, rows=frame.height),
        key=f"csv_{name}",
    )
