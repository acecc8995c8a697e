"""The one way pages read data: the viewer's own release file, the table asked for, the viewer's scope.

Disclosure control is done at publication (``pipelines/publication``): each audience has a file
holding exactly the tables it may see, already protected and audited. A funder's page opens the
funders' file, an agency's page its agency's file, an analyst's page the serving snapshot (every
mart, and the same release tables with their true values). So this layer only chooses the file
and the table, checks the viewer's role (default deny) and keeps the viewer's scope; it computes
nothing from hidden values. Nobody outside the federation ever gets a person-level row (those
live in a separate analyst snapshot, opened only by the study builder). Streamlit's cache is
shared by every viewer: the cached reader is keyed by the file, and scoping happens after it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, SupportsFloat

import polars as pl
import streamlit as st

from dashboards import audit
from dashboards.access import Denied, Role, Viewer
from pipelines import warehouse
from pipelines.impact.registration import released_log
from pipelines.operations.releases import (
    ReleaseError,
    list_releases,
    manifest_candidates,
    manifest_for,
    read_manifest,
    release_path,
    releases_dir,
    serving_of,
)
from pipelines.operations.status import BATCHES, LANDING, QUARANTINE, operations_path
from pipelines.publication import agency_tables, federation_tables, study_tables
from pipelines.publication.release import agency_path, funder_path
from pipelines.settings import load_settings

BREAKDOWNS = ("region", "departement", "gir_band", "age_band", "agency_model")
"""The breakdowns of the territories page, in its tabs' order (labels: ``code.dimension.*``)."""


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


RELEASE_KEY = "parcours_release"
"""The session's chosen release (analysts only; empty: the release in service, the latest)."""


@dataclass(frozen=True)
class InService:
    """What the dashboards need of the release in service's manifest: its name and the folder it is kept in."""

    name: str
    kept_at: str


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        found = path.stat()
    except FileNotFoundError:
        return None
    return found.st_mtime_ns, found.st_ino, found.st_size


# The manifest lists every study's registration log (hundreds of kilobytes): parsed at each table read it cost
# more than the read itself. It is parsed again when a new release is put in service (a new file: a new stamp).
@st.cache_resource(ttl=300, show_spinner=False, max_entries=16)
def _in_service_at(serving: str, stamps: tuple[tuple[int, int, int] | None, ...]) -> InService:
    del stamps  # part of the cache key only
    manifest = manifest_for(Path(serving)) or {}
    return InService(str(manifest.get("name") or ""), str(manifest.get("kept_at") or ""))


def _in_service(serving: Path) -> InService:
    """The release in service's name and folder (empty when the files have no manifest)."""
    return _in_service_at(str(serving), tuple(_stamp(p) for p in manifest_candidates(serving)))


def releases_root() -> Path:
    """Where the kept releases are: beside the release in service (its manifest says), else under the data
    folder (``PARCOURS_DATA_DIR``)."""
    settings = load_settings()
    kept_at = _in_service(settings.serving_path).kept_at
    if kept_at:
        return Path(kept_at).parent
    return releases_dir(settings.data_dir)


def _serving(viewer: Viewer) -> Path:
    """The analysts' snapshot of the release the viewer reads: the one in service, or for an analyst the kept
    release they chose. Funders and agencies read the release in service only."""
    settings = load_settings()
    chosen = str(st.session_state.get(RELEASE_KEY, "") or "") if viewer.role == "analyst" else ""
    if not chosen or chosen == _in_service(settings.serving_path).name:
        return settings.serving_path
    try:
        return serving_of(release_path(releases_root(), chosen), settings.serving_path.name)
    except ReleaseError:
        raise SnapshotMissing(f"No release named {chosen}.") from None


def release_file(viewer: Viewer) -> Path:
    """The file a viewer's pages read: their audience's release, nothing else."""
    serving = _serving(viewer)
    if viewer.role == "analyst":
        return serving
    if viewer.role == "funder":
        return funder_path(serving)
    if viewer.role == "agency" and viewer.agency_id:
        return agency_path(serving, viewer.agency_id)
    raise Denied("no release for this viewer")


def current_snapshot(viewer: Viewer) -> Snapshot:
    return _snapshot(release_file(viewer))


# A resource cache hands every rerun the same frame instead of unpickling a copy (Polars frames are never
# changed in place: every operation returns a new one), which a rerun would otherwise pay for each table.
@st.cache_resource(ttl=300, show_spinner=False, max_entries=256)
def _read_table(path: str, version: float, table: str) -> pl.DataFrame:
    del version  # part of the cache key only
    with warehouse.connect(Path(path), read_only=True) as con:
        return warehouse.query(con, f"select * from {warehouse.quote_identifier(table)}")


def _table(viewer: Viewer, table: str) -> pl.DataFrame:
    snapshot = current_snapshot(viewer)
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


def snapshot_metadata(viewer: Viewer | None) -> dict[str, str]:
    """When the viewer's release was published, on data complete to when, under which contract."""
    if viewer is None:
        raise Denied("sign in first")
    rows = _table(viewer, "serving_metadata")
    return dict(zip(rows["key"].to_list(), rows["value"].to_list(), strict=True))


def record(viewer: Viewer | None, event: audit.Event, page: str, **details: str | int) -> None:
    audit.record(load_settings().audit_log, viewer, event, page, **details)


# --- federation-wide figures: funders and analysts -------------------------------------------


def federation_summary(viewer: Viewer) -> pl.DataFrame:
    require(viewer, "funder", "analyst")
    return _table(viewer, federation_tables.SUMMARY).sort(["agency_model", "cohort"])


def hospitalisation_rates(viewer: Viewer) -> pl.DataFrame:
    """The federation's unplanned admission rates by cohort and period (the ``all`` rows of the outcomes)."""
    require(viewer, "funder", "analyst")
    return _table(viewer, federation_tables.OUTCOMES).filter(pl.col("dimension") == "all").sort(["cohort", "period"])


def outcome_breakdown(viewer: Viewer, dimension: str) -> pl.DataFrame:
    """Hospital outcomes by one breakdown, cohort and period, as released."""
    require(viewer, "funder", "analyst")
    if dimension not in BREAKDOWNS:
        raise ValueError(f"unknown breakdown {dimension}")
    frame = _table(viewer, federation_tables.OUTCOMES)
    return frame.filter(pl.col("dimension") == dimension).sort("dimension_value")


# --- impact studies ------------------------------------------------------------------------


def studies(viewer: Viewer) -> pl.DataFrame:
    """One row per study (its main result), the headline study first (``order`` in the study files); the
    funders' release holds publishable studies only."""
    require(viewer, "funder", "analyst")
    return _table(viewer, study_tables.STUDIES).filter(pl.col("role") == "main").sort(["study_order", "study"])


def _require_published(viewer: Viewer, study: str) -> None:
    if study not in studies(viewer)["study"].to_list():
        raise Denied(f"study {study} is not published")


def study_detail(viewer: Viewer, study: str) -> pl.DataFrame:
    """Every row of one study: main, negative controls and subgroups."""
    _require_published(viewer, study)
    return _table(viewer, study_tables.STUDIES).filter(pl.col("study") == study)


def study_curves(viewer: Viewer, study: str) -> pl.DataFrame:
    """Cumulative-incidence points (for funders, only where enough events accrued since the last point)."""
    _require_published(viewer, study)
    return _table(viewer, study_tables.CURVES).filter(pl.col("study") == study).sort(["curve", "day"])


def study_diagnostics(viewer: Viewer, study: str) -> dict[str, Any]:
    """Balance and overlap of the study's main result, the histogram and attrition from their released tables."""
    main = study_detail(viewer, study).filter(pl.col("role") == "main")
    diagnostics: dict[str, Any] = json.loads(main["diagnostics"][0] or "{}") if main.height else {}
    overlap = _table(viewer, study_tables.OVERLAP).filter(pl.col("study") == study)
    histogram: dict[str, list[int | None]] = {}
    for (arm,), rows in overlap.group_by("arm", maintain_order=True):
        ordered = rows.with_columns(pl.col("bin").cast(pl.Int64)).sort("bin")
        histogram[str(arm)] = ordered["episodes"].to_list()
    if histogram:
        diagnostics["propensity_histogram"] = histogram
    steps = _table(viewer, study_tables.ATTRITION).filter(pl.col("study") == study).sort("step_order")
    if steps.height:
        diagnostics["attrition"] = dict(zip(steps["step"].to_list(), steps["episodes"].to_list(), strict=True))
    return diagnostics


# --- agencies: their own caseload and anonymous peers --------------------------------------------


def agency_ids(viewer: Viewer) -> list[str]:
    if viewer.role == "agency":
        return [str(viewer.agency_id)]
    require(viewer, "analyst")
    return sorted(_table(viewer, agency_tables.BENCHMARK)["agency_id"].to_list())


def _own(viewer: Viewer, table: str, agency_id: str | None, sort: list[str]) -> pl.DataFrame:
    agency = _agency_scope(viewer, agency_id)
    return _table(viewer, table).filter(pl.col("agency_id") == agency).sort(sort)


def agency_caseload(viewer: Viewer, agency_id: str | None = None) -> pl.DataFrame:
    return _own(viewer, agency_tables.CASELOAD, agency_id, ["month_start"])


def agency_referrals_payers(viewer: Viewer, agency_id: str | None = None) -> pl.DataFrame:
    return _own(viewer, agency_tables.REFERRALS, agency_id, ["dimension", "episodes"])


def agency_delivery(viewer: Viewer, agency_id: str | None = None) -> pl.DataFrame:
    return _own(viewer, agency_tables.DELIVERY, agency_id, ["cohort", "period"])


def agency_case_mix(viewer: Viewer, agency_id: str | None = None) -> pl.DataFrame:
    return _own(viewer, agency_tables.CASE_MIX, agency_id, ["cohort"])


@dataclass(frozen=True)
class PeerComparison:
    own: pl.DataFrame
    peers: pl.DataFrame
    """Anonymous: labelled Peer 1..n in order of their ratio, never by identifier (analysts see it)."""
    problem: str | None
    quartile: int | None


def quartile(own_ratio: float | None, ratios: list[float]) -> int | None:
    """The agency's quartile among the released ratios (its own included), Q1 the lowest; None under 4."""
    if own_ratio is None or len(ratios) < 4:
        return None
    below = sum(1 for r in ratios if r < own_ratio) / len(ratios)
    return min(4, int(below * 4) + 1)


def agency_peers(viewer: Viewer, agency_id: str | None = None) -> PeerComparison:
    """The agency's observed/expected unplanned admissions against its peers' (indirect standardisation)."""
    agency = _agency_scope(viewer, agency_id)
    own = _table(viewer, agency_tables.BENCHMARK).filter(pl.col("agency_id") == agency)
    peers = _table(viewer, agency_tables.PEERS).filter(pl.col("for_agency") == agency)
    peers = peers.with_columns(pl.col("peer").str.extract(r"(\d+)$").cast(pl.Int64).alias("_rank")).sort("_rank")
    peers = peers.drop("_rank", "for_agency")
    if viewer.role != "analyst":
        peers = peers.drop("peer_agency_id")
    problem = (own["peer_problem"][0] or None) if own.height else None
    own_ratio = own["observed_over_expected"][0] if own.height else None
    ratios = [r for r in [own_ratio, *peers["observed_over_expected"].to_list()] if r is not None]
    return PeerComparison(own, peers, problem, quartile(own_ratio, ratios))


@dataclass(frozen=True)
class PeerFamily:
    """One outcome family of an agency against its anonymous peers, shaped for a funnel plot.

    ``own`` and ``peers`` hold ``n`` (the precision axis: expected admissions, or cases), ``value`` (the ratio or
    share), ``low`` and ``high`` (its 95% interval); peers also ``peer`` (``Peer 1..n``)."""

    family: str
    kind: str
    """``ratio`` (observed/expected, around 1) or ``share`` (around the federation's share)."""
    target: float
    own: pl.DataFrame
    peers: pl.DataFrame
    problem: str | None
    quartile: int | None

    def table(self, own_label: str) -> pl.DataFrame:
        """What the page offers to download: the agency and its peers, as plotted."""
        own = self.own.select(pl.lit(own_label).alias("peer"), "n", "value")
        return pl.concat([own, self.peers.select("peer", "n", "value")])


def agency_families(viewer: Viewer, agency_id: str | None = None) -> list[PeerFamily]:
    """Every outcome family of an agency against its anonymous peers: admissions (observed/expected), then the
    shares of ``release_peer_outcomes``; each family's target is the released total of the group shown."""
    agency = _agency_scope(viewer, agency_id)
    admissions = agency_peers(viewer, agency)
    own = admissions.own.select(pl.col("expected").alias("n"), pl.col("observed_over_expected").alias("value"),
                                pl.col("ratio_ci_low").alias("low"), pl.col("ratio_ci_high").alias("high"))  # fmt: skip
    peers = admissions.peers.select(
        "peer", pl.col("expected").alias("n"), pl.col("observed_over_expected").alias("value")
    )
    families = [PeerFamily("admissions", "ratio", 1.0, own, peers, admissions.problem, admissions.quartile)]
    table = _table(viewer, agency_tables.PEER_OUTCOMES).filter(pl.col("for_agency") == agency)
    for family in agency_tables.FAMILIES:
        rows = table.filter(pl.col("family") == family)
        mine = rows.filter(pl.col("peer") == "own")
        rank = pl.col("peer").str.extract(r"(\d+)$").cast(pl.Int64)
        others = rows.filter(pl.col("peer") != "own").sort(rank)
        problem = (mine["problem"][0] or None) if mine.height else None
        shown = pl.concat([mine, others]).drop_nulls("value")
        amount, base = ("amount", "base") if family == "delivered_hours" else ("events", "cases")
        target = _ratio(shown[amount].sum(), shown[base].sum()) if shown.height else None
        own_value = mine["value"][0] if mine.height else None
        values = [v for v in [own_value, *others["value"].to_list()] if v is not None]
        families.append(PeerFamily(
            family, "share", 0.0 if target is None else float(target),
            mine.select(pl.col("cases").cast(pl.Float64).alias("n"), "value", pl.col("ci_low").alias("low"),
                        pl.col("ci_high").alias("high")),
            others.select("peer", pl.col("cases").cast(pl.Float64).alias("n"), "value"),
            problem, quartile(own_value, values),
        ))  # fmt: skip
    return families


def _ratio(numerator: SupportsFloat | None, denominator: SupportsFloat | None) -> float | None:
    return None if numerator is None or not denominator else float(numerator) / float(denominator)


# --- analysts only ----------------------------------------------------------------------------


def landing_files(viewer: Viewer) -> pl.DataFrame:
    require(viewer, "analyst")
    return _table(viewer, "ops_landing_files").sort(["agency_folder", "relative_path"])


def quarantine_reasons(viewer: Viewer) -> pl.DataFrame:
    require(viewer, "analyst")
    return _table(viewer, "ops_quarantine_reasons").sort(["agency_folder", "reason"])


def contract_checks(viewer: Viewer) -> pl.DataFrame:
    require(viewer, "analyst")
    return _table(viewer, "ops_contract_checks").sort(["entity", "category", "expectation"])


def agencies_overview(viewer: Viewer) -> pl.DataFrame:
    require(viewer, "analyst")
    return _table(viewer, "mart_agency_benchmark").sort("agency_id")


def operations_table(viewer: Viewer, table: str = LANDING) -> pl.DataFrame:
    """What arrived since the last release too: the operations file published after every ingestion."""
    require(viewer, "analyst")
    if table not in (LANDING, QUARANTINE, BATCHES):
        raise ValueError("not an operations table")
    snapshot = _snapshot(operations_path(load_settings().serving_path))
    with warehouse.connect(snapshot.path, read_only=True) as con:
        if not warehouse.table_exists(con, table):
            return pl.DataFrame()
        return warehouse.query(con, f"select * from {warehouse.quote_identifier(table)}")


def releases(viewer: Viewer) -> list[dict[str, Any]]:
    """Every kept release, oldest first: name, publication, data cut-off, code, studies' logs (analysts)."""
    require(viewer, "analyst")
    keys = ("name", "published_at", "data_cutoff", "run_id", "contract_version", "code_version", "studies")
    return [{k: m.get(k) for k in keys} for m in list_releases(releases_root())]


@st.cache_resource(ttl=300, show_spinner=False, max_entries=64)
def _manifest(path: str, version: float) -> dict[str, Any]:
    del version
    return read_manifest(Path(path))


def _release_manifest(name: str) -> dict[str, Any] | None:
    try:
        path = release_path(releases_root(), name)
    except ReleaseError:
        return None
    return _manifest(str(path), (path / "release.json").stat().st_mtime)


def study_plan_log(viewer: Viewer, study: str) -> list[dict[str, str]]:
    """The study's registration and amendments as they stood in the viewer's release (oldest first)."""
    if viewer.role == "funder":
        _require_published(viewer, study)
    else:
        require(viewer, "analyst")
    manifest = _release_manifest(snapshot_metadata(viewer).get("release", ""))
    if manifest is None:
        return []
    entry = next((s for s in manifest.get("studies", []) if s.get("name") == study), None)
    return released_log(entry.get("log", [])) if entry else []  # a release written before the guard, too


def headline_history(viewer: Viewer, study: str) -> pl.DataFrame:
    """The study's headline estimate in each release up to the viewer's, as funders were shown it (their
    file of each release: published studies only, the same protection): the estimate and interval its verdict
    published, calibrated or not as it was then."""
    if viewer.role == "funder":
        _require_published(viewer, study)
    else:
        require(viewer, "analyst")
    current = snapshot_metadata(viewer).get("release", "")
    settings = load_settings()
    root = releases_root()
    rows = []
    for manifest in list_releases(root):
        name = str(manifest["name"])
        funders = funder_path(serving_of(root / name, settings.serving_path.name))
        if funders.exists():
            table = _read_table(str(funders), funders.stat().st_mtime, study_tables.STUDIES)
            main = table.filter((pl.col("study") == study) & (pl.col("role") == "main"))
            for row in main.iter_rows(named=True):
                # What that release published: its verdict's numbers (calibrated when it was), not the row's
                # uncalibrated estimate, which a funder never read as the headline.
                rows.append({"release": name, "published_at": str(manifest.get("published_at", "")),
                             **study_tables.published_headline(row),
                             "publishable": bool(row.get("publishable"))})  # fmt: skip
        if name == current:
            break
    schema = {"release": pl.String, "published_at": pl.String, "estimate": pl.Float64, "ci_low": pl.Float64,
              "ci_high": pl.Float64, "calibrated": pl.Boolean, "publishable": pl.Boolean}  # fmt: skip
    return pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)


def analyst_snapshot_path(viewer: Viewer) -> Path:
    """The person-level study inputs: for the analysts' study builder only."""
    require(viewer, "analyst")
    return _snapshot(load_settings().analyst_snapshot).path
