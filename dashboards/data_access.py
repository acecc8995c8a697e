"""The one way pages read data: short read-only connections to the serving snapshot, scoped to a viewer.

Pages never open the pipeline's working database, and never query a snapshot themselves:
they call the functions below with the signed-in ``Viewer``. Each function checks the
viewer's role (default deny), keeps only the viewer's scope (an agency sees its own rows and
anonymous peers), and applies disclosure control for funders and agencies before returning.
Analysts, inside the federation, see unsuppressed aggregates; nobody outside it ever gets a
person-level row (those live in a separate analyst snapshot, opened only by the study builder).
Streamlit's cache is shared by every viewer: the cached readers return whole served tables,
and scoping happens after them, per call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import streamlit as st

from dashboards import audit
from dashboards.access import Denied, Role, Viewer
from dashboards.disclosure import MIN_CELL, blank_rows, peer_group_problem, protect_breakdown
from pipelines import warehouse
from pipelines.settings import load_settings

OUTSIDE = ("funder", "agency")
"""Roles outside the federation's analysts: they get disclosure control."""
BREAKDOWNS = {
    "departement": "Département",
    "gir_band": "GIR band",
    "age_band": "Age band",
    "agency_model": "Agency model",
}


class SnapshotMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class Snapshot:
    path: Path
    version: float
    """Modification time: a new snapshot is a new cache key."""


def _snapshot(path: Path) -> Snapshot:
    if not path.exists():
        raise SnapshotMissing(
            f"No serving snapshot at {path}. Run `make demo`, or `parcours generate` then `parcours run`."
        )
    return Snapshot(path, path.stat().st_mtime)


def current_snapshot() -> Snapshot:
    return _snapshot(load_settings().serving_path)


@st.cache_data(ttl=300, show_spinner=False, max_entries=128)
def _read_table(path: str, version: float, table: str) -> pl.DataFrame:
    del version  # part of the cache key only
    with warehouse.connect(Path(path), read_only=True) as con:
        return warehouse.query(con, f"select * from {warehouse.quote_identifier(table)}")


def _table(table: str) -> pl.DataFrame:
    snapshot = current_snapshot()
    return _read_table(str(snapshot.path), snapshot.version, table)


def require(viewer: Viewer | None, *roles: Role) -> Viewer:
    if viewer is None or viewer.role not in roles:
        raise Denied(f"this page is for {' and '.join(roles)} users")
    return viewer


def _agency_scope(viewer: Viewer, agency_id: str | None) -> str:
    """The agency a viewer may look at: an agency user only their own, an analyst any."""
    if viewer.role == "agency":
        if agency_id not in (None, viewer.agency_id):
            raise Denied("an agency sees its own data only")
        return str(viewer.agency_id)
    require(viewer, "analyst")
    if not agency_id:
        raise ValueError("choose an agency")
    return agency_id


def snapshot_metadata() -> dict[str, str]:
    snapshot = current_snapshot()
    rows = _read_table(str(snapshot.path), snapshot.version, "serving_metadata")
    return dict(zip(rows["key"].to_list(), rows["value"].to_list(), strict=True))


def record(viewer: Viewer | None, event: audit.Event, page: str, **details: str | int) -> None:
    audit.record(load_settings().audit_log, viewer, event, page, **details)


# --- federation-wide figures: funders and analysts -------------------------------------------


def federation_summary(viewer: Viewer) -> pl.DataFrame:
    require(viewer, "funder", "analyst")
    frame = _table("mart_federation_summary").sort(["agency_model", "cohort"])
    if viewer.role == "analyst":
        return frame
    return protect_breakdown(frame, ["persons", "episodes", "open_episodes"], ["cohort"])


def hospitalisation_rates(viewer: Viewer) -> pl.DataFrame:
    require(viewer, "funder", "analyst")
    frame = _table("mart_hospitalisation_rates")
    if viewer.role == "analyst":
        return frame
    rates = [c for c in frame.columns if "rate" in c or c.startswith("person_")]
    return protect_breakdown(frame, ["persons", "unplanned_admissions", "planned_admissions"], ["period"], rates)


def outcome_breakdown(viewer: Viewer, dimension: str) -> pl.DataFrame:
    """Hospital outcomes by one breakdown (pre-computed), cohort and period, with complementary suppression."""
    require(viewer, "funder", "analyst")
    if dimension not in BREAKDOWNS:
        raise ValueError(f"unknown breakdown {dimension}")
    frame = _table("mart_hospital_outcomes").filter(pl.col("dimension") == dimension).sort("dimension_value")
    if viewer.role == "analyst":
        return frame
    counts = [
        "persons",
        "episodes",
        "unplanned_admissions",
        "planned_admissions",
        "avoidable_admissions",
        "readmissions_30d",
        "emergency_visits_without_admission",
    ]
    derived = [c for c in frame.columns if "rate" in c or c.startswith("person_")]
    return protect_breakdown(frame, counts, ["cohort", "period"], derived)


# --- impact studies ------------------------------------------------------------------------


def studies(viewer: Viewer) -> pl.DataFrame:
    """One row per study (its main result); funders see publishable studies only."""
    require(viewer, "funder", "analyst")
    frame = _table("mart_impact_studies").filter(pl.col("role") == "main").sort("study")
    return frame if viewer.role == "analyst" else frame.filter(pl.col("publishable"))


def _require_published(viewer: Viewer, study: str) -> None:
    if study not in studies(viewer)["study"].to_list():
        raise Denied(f"study {study} is not published")


def study_detail(viewer: Viewer, study: str) -> pl.DataFrame:
    """Every row of one study: main, negative controls and subgroups; small subgroups blanked outside."""
    _require_published(viewer, study)
    frame = _table("mart_impact_studies").filter(pl.col("study") == study)
    if viewer.role == "analyst":
        return frame
    small = (pl.col("n_treated") < MIN_CELL) | (pl.col("n_comparison") < MIN_CELL)
    hidden = ["estimate", "ci_low", "ci_high", "treated_value", "counterfactual_value", "n_treated", "n_comparison"]
    return blank_rows(frame, small, hidden)


def study_curves(viewer: Viewer, study: str) -> pl.DataFrame:
    """Cumulative-incidence points; outside the federation, a point resting on fewer than 11 people is blanked."""
    _require_published(viewer, study)
    frame = _table("mart_study_curves").filter(pl.col("study") == study).sort(["curve", "day"])
    if viewer.role == "analyst":
        return frame
    small = (pl.col("at_risk") < MIN_CELL) | pl.col("events").is_between(1, MIN_CELL - 1)
    return blank_rows(frame, small, ["cumulative_incidence", "ci_low", "ci_high", "at_risk", "events"])


def study_diagnostics(viewer: Viewer, study: str) -> dict[str, Any]:
    """Balance and overlap of the study's main result; histogram bins under 11 blanked outside."""
    main = study_detail(viewer, study).filter(pl.col("role") == "main")
    diagnostics: dict[str, Any] = json.loads(main["diagnostics"][0] or "{}") if main.height else {}
    if viewer.role != "analyst":
        diagnostics.pop("propensity_range", None)  # extremes describe single people
        histogram = diagnostics.get("propensity_histogram", {})
        for arm, counts in histogram.items():
            histogram[arm] = [None if 0 < c < MIN_CELL else c for c in counts]
    return diagnostics


# --- agencies: their own caseload and anonymous peers --------------------------------------------


def agency_ids(viewer: Viewer) -> list[str]:
    if viewer.role == "agency":
        return [str(viewer.agency_id)]
    require(viewer, "analyst")
    return sorted(_table("mart_agency_benchmark")["agency_id"].to_list())


def agency_caseload(viewer: Viewer, agency_id: str | None = None) -> pl.DataFrame:
    agency = _agency_scope(viewer, agency_id)
    frame = _table("mart_caseload").filter(pl.col("agency_id") == agency).sort("month_start")
    if viewer.role == "analyst":
        return frame
    return protect_breakdown(frame, ["active_episodes"], ["agency_id", "month_start"], ["episodes_per_fte"])


def agency_referrals_payers(viewer: Viewer, agency_id: str | None = None) -> pl.DataFrame:
    agency = _agency_scope(viewer, agency_id)
    frame = _table("mart_referrals_payers").filter(pl.col("agency_id") == agency).sort(["dimension", "episodes"])
    if viewer.role == "analyst":
        return frame
    return protect_breakdown(frame, ["episodes"], ["cohort", "dimension"])


def _agency_rows(table: str, agency: str) -> pl.DataFrame:
    return _table(table).filter((pl.col("dimension") == "agency") & (pl.col("dimension_value") == agency))


def agency_delivery(viewer: Viewer, agency_id: str | None = None) -> pl.DataFrame:
    agency = _agency_scope(viewer, agency_id)
    frame = _agency_rows("mart_service_delivery", agency).sort(["cohort", "period"])
    if viewer.role == "analyst":
        return frame
    derived = ["person_months", "hours_granted", "hours_delivered", "hours_unused", "delivery_ratio"]
    return protect_breakdown(frame, ["persons"], ["cohort", "period"], derived)


def agency_case_mix(viewer: Viewer, agency_id: str | None = None) -> pl.DataFrame:
    agency = _agency_scope(viewer, agency_id)
    frame = _agency_rows("mart_timeliness_case_mix", agency).sort("cohort")
    if viewer.role == "analyst":
        return frame
    derived = [c for c in frame.columns if c.startswith(("days_", "age_", "share_"))]
    return protect_breakdown(frame, ["episodes", "persons", "episodes_with_plan"], ["dimension"], derived)


@dataclass(frozen=True)
class PeerComparison:
    own: pl.DataFrame
    peers: pl.DataFrame
    """Anonymous: labelled Peer 1..n in order of their ratio, never by identifier."""
    problem: str | None
    quartile: int | None


def agency_peers(viewer: Viewer, agency_id: str | None = None) -> PeerComparison:
    """The agency's observed/expected unplanned admissions against its peers' (indirect standardisation)."""
    agency = _agency_scope(viewer, agency_id)
    frame = _table("mart_agency_benchmark").sort("agency_id")
    own = frame.filter(pl.col("agency_id") == agency)
    sizes = dict(zip(frame["agency_id"].to_list(), frame["episodes"].to_list(), strict=True))
    problem = peer_group_problem(agency, sizes)
    ratios = frame["observed_over_expected"].drop_nulls()
    quartile = None
    if own.height and own["observed_over_expected"][0] is not None and ratios.len() >= 4:
        below = float((ratios < own["observed_over_expected"][0]).mean())
        quartile = min(4, int(below * 4) + 1)
    peers = frame.filter(pl.col("agency_id") != agency)
    if viewer.role != "analyst":
        if problem:
            return PeerComparison(own, peers.clear().drop("agency_id"), problem, None)
        peers = peers.filter(pl.col("observed") >= MIN_CELL)  # a peer with few events is left out
    peers = peers.sort("observed_over_expected").with_columns(
        pl.format("Peer {}", pl.int_range(1, pl.len() + 1)).alias("peer")
    )
    if viewer.role != "analyst":
        peers = peers.drop("agency_id")
    return PeerComparison(own, peers, problem, quartile)


# --- analysts only ----------------------------------------------------------------------------


def landing_files(viewer: Viewer) -> pl.DataFrame:
    require(viewer, "analyst")
    return _table("ops_landing_files").sort(["agency_folder", "relative_path"])


def quarantine_reasons(viewer: Viewer) -> pl.DataFrame:
    require(viewer, "analyst")
    return _table("ops_quarantine_reasons").sort(["agency_folder", "reason"])


def contract_checks(viewer: Viewer) -> pl.DataFrame:
    require(viewer, "analyst")
    return _table("ops_contract_checks").sort(["entity", "category", "expectation"])


def agencies_overview(viewer: Viewer) -> pl.DataFrame:
    require(viewer, "analyst")
    return _table("mart_agency_benchmark").sort("agency_id")


def analyst_snapshot_path(viewer: Viewer) -> Path:
    """The person-level study inputs: for the analysts' study builder only."""
    require(viewer, "analyst")
    return _snapshot(load_settings().analyst_snapshot).path
