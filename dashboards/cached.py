"""Figures cached by what they are drawn from: the viewer (and so their release file), the snapshot's version,
the study or selection, and the language. A rerun that changes nothing a figure depends on reuses it."""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboards import data_access
from dashboards.access import Viewer
from dashboards.data_access import PeerFamily
from dashboards.figures import (
    balance_plot,
    caseload_chart,
    forest_plot,
    funnel_plot,
    incidence_chart,
    overlap_plot,
    share_bars,
)
from dashboards.study_content import subgroup_rows
from pipelines.impact.gate import Verdict
from pipelines.presentation.catalogue import Language, t
from pipelines.presentation.verdict import unit


# Figures are kept as objects (a resource cache), not pickled: unpickling a Plotly figure validates every trace
# again, which was a third of a rerun. Nothing changes a cached figure (``st.plotly_chart`` and the report copy it).
@st.cache_resource(ttl=300, show_spinner=False, max_entries=128)
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


@st.cache_resource(ttl=300, show_spinner=False, max_entries=128)
def _peer_families(viewer: Viewer, agency: str, version: float) -> list[PeerFamily]:
    del version  # part of the cache key only
    return data_access.agency_families(viewer, agency)


def peer_families(viewer: Viewer, agency: str) -> list[PeerFamily]:
    """An agency's outcome families against its peers, read and shaped once per release (and viewer)."""
    return _peer_families(viewer, agency, data_access.current_snapshot(viewer).version)


@st.cache_resource(ttl=300, show_spinner=False, max_entries=256)
def _funnel(viewer: Viewer, agency: str, family: str, language: Language, version: float) -> go.Figure:
    found = next(f for f in _peer_families(viewer, agency, version) if f.family == family)
    return funnel_plot(
        found.own,
        found.peers,
        t("peers.this_agency", language),
        language,
        found.kind,
        found.target,
        t(f"peers.{family}.title", language),
        t(f"peers.{family}.x", language),
        t(f"peers.{family}.y", language),
    )


def funnel_figure(viewer: Viewer, agency: str, family: str, language: Language) -> go.Figure:
    """One family's funnel plot, drawn once per release, viewer, agency and language."""
    return _funnel(viewer, agency, family, language, data_access.current_snapshot(viewer).version)


@st.cache_resource(ttl=300, show_spinner=False, max_entries=256)
def _caseload(viewer: Viewer, agency: str, language: Language, version: float) -> dict[str, go.Figure]:
    del version  # part of the cache key only
    sources = data_access.agency_referrals_payers(viewer, agency).filter(pl.col("cohort") == "care_managed")
    return {
        "caseload": caseload_chart(data_access.agency_caseload(viewer, agency), language),
        "referrals": share_bars(
            sources.filter(pl.col("dimension") == "referral_source"),
            "referral_source",
            t("caseload.referrals", language),
            language,
        ),
        "payers": share_bars(
            sources.filter(pl.col("dimension") == "payer"), "payer", t("caseload.payers", language), language
        ),
    }


def caseload_figures(viewer: Viewer, agency: str, language: Language) -> dict[str, go.Figure]:
    """An agency's caseload chart and its referral sources and payers (care-managed cases), drawn once per
    release, viewer, agency and language."""
    return _caseload(viewer, agency, language, data_access.current_snapshot(viewer).version)
