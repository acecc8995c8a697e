"""Figures cached by what they are drawn from: the viewer (and so their release file), the snapshot's version,
the study or selection, and the language. A rerun that changes nothing a figure depends on reuses it."""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboards import data_access
from dashboards.access import Viewer
from dashboards.figures import balance_plot, forest_plot, incidence_chart, overlap_plot
from dashboards.study_content import subgroup_rows
from pipelines.impact.gate import Verdict
from pipelines.presentation.catalogue import Language
from pipelines.presentation.verdict import unit


@st.cache_data(ttl=300, show_spinner=False, max_entries=128)
def _study_figures(viewer: Viewer, study: str, language: Language, version: float) -> dict[str, go.Figure]:
    del version  # part of the cache key only: a new snapshot draws again
    rows = data_access.study_detail(viewer, study)
    main = rows.filter(pl.col("role") == "main").row(0, named=True)
    calibrated = bool(Verdict.from_json(main["verdict"]).numbers.get("calibrated"))
    diagnostics = data_access.study_diagnostics(viewer, study)
    figures = {"forest": forest_plot(subgroup_rows(rows, language), unit(main["unit"], language), language, calibrated)}
    curves = data_access.study_curves(viewer, study)
    if not curves.is_empty():
        figures["incidence"] = incidence_chart(curves, language)
    figures["balance"] = balance_plot(diagnostics, language)
    figures["overlap"] = overlap_plot(diagnostics, language)
    return figures


def study_figures(viewer: Viewer, study: str, language: Language) -> dict[str, go.Figure]:
    return _study_figures(viewer, study, language, data_access.current_snapshot(viewer).version)
