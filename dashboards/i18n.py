"""Streamlit glue for the language: the viewer's choice, remembered per user on the server, and ``tr``.

The language lives in the session (``st.session_state``), loaded once from the user's stored preference
when they sign in and saved again whenever they change it. Before sign-in it is the session's only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from dashboards.preferences import load_language, save_language
from pipelines.presentation.catalogue import LANGUAGES, Language, label, language_of, t
from pipelines.settings import load_settings

LANGUAGE_KEY = "parcours_language"
LOADED_FOR_KEY = "parcours_language_loaded_for"
PICKER_KEY = "parcours_language_picker"


def preferences_dir() -> Path:
    return load_settings().data_dir / "preferences"


def language() -> Language:
    return language_of(st.session_state.get(LANGUAGE_KEY, "fr"))


def remember_identity(identity: str | None) -> None:
    """Load the signed-in user's stored language, once per identity and session."""
    if identity and st.session_state.get(LOADED_FOR_KEY) != identity:
        st.session_state[LANGUAGE_KEY] = load_language(preferences_dir(), identity)
        st.session_state[LOADED_FOR_KEY] = identity


def tr(key: str, **values: Any) -> str:
    """A message in the viewer's language."""
    return t(key, language(), **values)


def lb(kind: str, code: object) -> str:
    """A code's label in the viewer's language."""
    return label(kind, code, language())


def labeller(kind: str) -> Callable[[object], str]:
    """A code's label in the language of this run, for a widget's ``format_func`` (called again after the run,
    when the session's language cannot be read)."""
    current = language()
    return lambda code: label(kind, code, current)


def _changed(identity: str | None) -> None:
    chosen = language_of(st.session_state.get(PICKER_KEY) or language())
    st.session_state[LANGUAGE_KEY] = chosen
    if identity:
        save_language(preferences_dir(), identity, chosen)


def language_picker(identity: str | None) -> None:
    """Français / English; the choice is saved for the signed-in user."""
    current = language()
    st.session_state[PICKER_KEY] = current
    st.segmented_control(
        t("app.language", current),
        list(LANGUAGES),
        format_func=lambda code: t(f"app.language.{code}", current),
        key=PICKER_KEY,
        on_change=_changed,
        args=(identity,),
    )
