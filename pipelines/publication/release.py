"""Build each audience's release from the marts, protect it, audit it, write it, swap it in.

Audiences: the funders (one file), each agency (one file each, its own rows and its anonymous
peers), and the analysts (the serving snapshot: every mart and ops table, plus the same release
tables with their true values, for the analysts' view of the funder and agency pages). The
auditor attacks each protected audience's tables together; when it recovers a hidden count, one
more cell of the relations it used is hidden (the cheapest: a département before a région) and
the audience is rebuilt, until nothing can be recovered. The files are then written beside the
ones in service, read back and attacked again, and only then renamed into place, all of them;
a refused release leaves the previous one in service.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from pipelines import warehouse
from pipelines.publication import agency_tables as agency
from pipelines.publication import federation_tables as federation
from pipelines.publication import study_tables as studies
from pipelines.publication.audit import AuditReport, Target, attack, audit, released_values, zeros_to_mask
from pipelines.publication.collusion import Pool
from pipelines.publication.errors import PublicationError
from pipelines.publication.ledger import CellId, Ledger, Relation
from pipelines.publication.precision import rounded_tables
from pipelines.publication.protector import Protector
from pipelines.publication.rules import MAGNITUDE_NOISE, MAX_NOISE, MIN_CELL, PROTECTION_WIDTH
from pipelines.publication.schema import TableSchema
from pipelines.publication.study_verdicts import decision_problems

RELEASE_INPUTS = (
    "mart_hospital_outcomes",
    "mart_federation_summary",
    "mart_impact_studies",
    "mart_study_curves",
    "mart_caseload",
    "mart_referrals_payers",
    "mart_service_delivery",
    "mart_timeliness_case_mix",
    "mart_agency_benchmark",
    "mart_carer_load",
    "mart_ruptures",
)
"""The marts releases are built from."""

FUNDER_SCHEMAS: dict[str, TableSchema] = {
    s.name: s
    for s in (
        federation.OUTCOMES_SCHEMA,
        federation.SUMMARY_SCHEMA,
        studies.STUDIES_SCHEMA,
        studies.OVERLAP_SCHEMA,
        studies.ATTRITION_SCHEMA,
        studies.CURVES_SCHEMA,
    )
}
AGENCY_SCHEMAS: dict[str, TableSchema] = {
    s.name: s
    for s in (
        agency.CASELOAD_SCHEMA,
        agency.REFERRALS_SCHEMA,
        agency.DELIVERY_SCHEMA,
        agency.CASE_MIX_SCHEMA,
        agency.BENCHMARK_SCHEMA,
        agency.PEERS_SCHEMA,
        agency.PEER_OUTCOMES_SCHEMA,
    )
}
RELEASE_TABLES = (*FUNDER_SCHEMAS, *AGENCY_SCHEMAS)
AGENCY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MAX_ROUNDS = 40


@dataclass
class AudienceRelease:
    audience: str
    tables: dict[str, pl.DataFrame]
    ledger: Ledger
    schemas: Mapping[str, TableSchema]
    problems: list[str] = field(default_factory=list)
    """What the rules that need the true marts found (curves, observed rates with their exposure)."""


def funder_release(marts: Mapping[str, pl.DataFrame], secret: bytes, forced: frozenset[CellId]) -> AudienceRelease:
    protector = Protector("funders", secret, forced)
    tables = {
        federation.OUTCOMES: federation.outcomes_table(marts["mart_hospital_outcomes"], protector),
        federation.SUMMARY: federation.summary_table(marts["mart_federation_summary"], protector),
        **studies.studies_tables(marts["mart_impact_studies"], marts["mart_study_curves"], protector),
    }
    problems = studies.curve_problems(marts["mart_study_curves"], tables[studies.CURVES])
    problems += studies.treated_value_problems(marts["mart_impact_studies"], tables[studies.STUDIES])
    problems += decision_problems(
        marts["mart_impact_studies"].to_dicts(), tables[studies.STUDIES].to_dicts()
    )  # a verdict never reads "publishable" for funders when the analyst's does not, nor the reverse
    return AudienceRelease("funders", tables, protector.ledger, FUNDER_SCHEMAS, problems)


def agency_release(
    marts: Mapping[str, pl.DataFrame],
    agency_id: str,
    secret: bytes | None,
    forced: frozenset[CellId] = frozenset(),
    families: Mapping[str, pl.DataFrame] | None = None,
) -> AudienceRelease:
    """One agency's release. ``families``: ``agency_tables.family_inputs(marts)``, when the caller builds every
    agency's release from the same marts (computed once, not once per agency and per round)."""
    protector = Protector(f"agency {agency_id}", secret, forced)
    own, peers = agency.benchmark_tables(marts["mart_agency_benchmark"], agency_id, protector)
    tables = {
        agency.CASELOAD: agency.caseload_table(marts["mart_caseload"], agency_id, protector),
        agency.REFERRALS: agency.referrals_table(marts["mart_referrals_payers"], agency_id, protector),
        agency.DELIVERY: agency.delivery_table(marts["mart_service_delivery"], agency_id, protector),
        agency.CASE_MIX: agency.case_mix_table(marts["mart_timeliness_case_mix"], agency_id, protector),
        agency.BENCHMARK: own,
        agency.PEERS: peers,
        agency.PEER_OUTCOMES: agency.peer_outcomes_table(marts, agency_id, protector, families),
    }
    return AudienceRelease(protector.audience, tables, protector.ledger, AGENCY_SCHEMAS)


def agencies(marts: Mapping[str, pl.DataFrame]) -> list[str]:
    """Every agency with a release: the agencies of the benchmark and of the caseload."""
    found = set(marts["mart_agency_benchmark"]["agency_id"].to_list()) | set(marts["mart_caseload"]["agency_id"])
    unsafe = [a for a in found if not AGENCY_ID.match(str(a))]
    if unsafe:
        raise PublicationError(
            f"{len(unsafe)} agency identifiers cannot name a release file (letters, digits, - and _)"
        )
    return sorted(found)


def analyst_tables(marts: Mapping[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """The release tables with their true values, every study and every agency: for analysts only."""
    protector = Protector("analysts", None)
    tables = {
        federation.OUTCOMES: federation.outcomes_table(marts["mart_hospital_outcomes"], protector),
        federation.SUMMARY: federation.summary_table(marts["mart_federation_summary"], protector),
        **studies.studies_tables(marts["mart_impact_studies"], marts["mart_study_curves"], protector),
    }
    # With no agency at all, one empty release still gives every table its columns.
    families = agency.family_inputs(marts)
    per_agency = [agency_release(marts, a, None, families=families).tables for a in agencies(marts) or ["none"]]
    for name in AGENCY_SCHEMAS:
        tables[name] = pl.concat([t[name] for t in per_agency])
    return tables


def complements(ledger: Ledger, targets: Iterable[Target]) -> set[CellId]:
    """For each recovered target, the cheapest released count of the relations around it, to hide as well."""
    chosen: set[CellId] = set()
    for target in targets:
        low, high = ledger.known.get(target.cell, (0.0, math.inf))
        if target.relation is None and min(high, MIN_CELL - 1) - max(low, 1) < PROTECTION_WIDTH:
            # No other cell hidden can widen it: what the release says about the count itself pins it.
            raise PublicationError(f"{target.describe()} is narrowed by a check met or not at a threshold under "
                                   f"{MIN_CELL} (set the study's size thresholds to at least {MIN_CELL})")  # fmt: skip
        candidates = _nearest_released(ledger, target) or _released_beside(ledger, target)
        if not candidates:
            raise PublicationError(f"no cell left to hide around {target.describe()}")
        chosen.add(min(candidates, key=lambda c: (ledger.cells[c].cost, ledger.cells[c].true, c.table, c.row)))
    return chosen


def _nearest_released(ledger: Ledger, target: Target) -> set[CellId]:
    """The released counts of the relations around a target; when all of them are hidden already, those of the
    relations around the hidden ones, and so on. A département alone in its région is pinned through the
    région (hidden with it) and the région's total minus the other régions: the cell to hide is there."""

    def touching(cells: set[CellId]) -> list[Relation]:
        return [r for r in ledger.relations if r.total in cells or any(p in cells for p in r.parts)]

    relations = [target.relation] if target.relation else touching({target.cell})
    seen: set[CellId] = {target.cell}
    while relations:
        members = {c for r in relations for c in (r.total, *r.parts)}
        released = {c for c in members if ledger.cells[c].released not in (None, 0) and not ledger.cells[c].implicit}
        if released:
            return released
        hidden = members - seen
        seen |= hidden
        relations = touching(hidden)
    return set()


def _released_beside(ledger: Ledger, target: Target) -> set[CellId]:
    """The released counts of other measures in the rows of a target and of its relation's parts: what is left
    when every count of the target's own measure around it is hidden already, and another measure of the same
    persons bounds it (30-day readmissions are no more than the persons counted beside them)."""
    cells = {
        target.cell,
        *(target.relation.parts if target.relation else ()),
        *((target.relation.total,) if target.relation else ()),
    }
    rows = {(c.table, c.row) for c in cells}
    return {
        c
        for c, cell in ledger.cells.items()
        if (c.table, c.row) in rows
        and c not in cells
        and cell.kind == "count"
        and cell.released not in (None, 0)
        and not cell.implicit
    }


@dataclass(frozen=True)
class EarlierRelease:
    """What an audience was shown in an earlier release (its file's tables), and the true values of the same
    tables (the analysts' copy in that release): the attacker holds the first, the auditor reads the second."""

    name: str
    shown: Mapping[str, pl.DataFrame]
    true: Mapping[str, pl.DataFrame]


def cross_release_bounds(
    ledger: Ledger, schemas: Mapping[str, TableSchema], earlier: Iterable[EarlierRelease]
) -> dict[CellId, tuple[float, float]]:
    """What earlier releases tell the attacker about cells this release hides.

    The cell-key method gives a cell the same noise whenever its count is the same: a cell hidden now (a
    complement) whose count has not changed since a release that showed it is known from that release to
    within the noise. The attacker cannot know that the count did not change, but may assume it; the
    auditor grants it whenever it is true. A count that changed gets no bound from its past (a new count
    has independent noise, and counts may move either way)."""
    bounds: dict[CellId, tuple[float, float]] = {}
    hidden = [c for c in ledger if c.released is None and not c.implicit]
    if not hidden:
        return bounds
    for release in earlier:
        shown, _ = released_values(ledger, release.shown, schemas)
        true, _ = released_values(ledger, release.true, schemas)
        for cell in hidden:
            before, value = true.get(cell.id), shown.get(cell.id)
            if value is None or before is None or before != cell.true:
                continue
            noise = MAX_NOISE if cell.kind == "count" else MAGNITUDE_NOISE
            low, high = bounds.get(cell.id, (-math.inf, math.inf))
            bounds[cell.id] = (max(low, value - noise), min(high, value + noise))
    return bounds


NoiseBoxes = Mapping[str, tuple[float, float]]
"""What an audience was shown, by noise key (``Cell.noise_key``): each shown cell's value within its noise."""


def shown_boxes(ledger: Ledger) -> dict[str, tuple[float, float]]:
    """Every cell the audience is shown, by noise key: its released value give or take its noise (a released 0
    or an exact value is exact)."""
    boxes: dict[str, tuple[float, float]] = {}
    for cell in ledger:
        if cell.released is None or cell.implicit or not cell.noise_key:
            continue
        low, high = boxes.get(cell.noise_key, (-math.inf, math.inf))
        boxes[cell.noise_key] = (max(low, cell.released - cell.noise), min(high, cell.released + cell.noise))
    return boxes


def keyed_bounds(ledger: Ledger, shown: Iterable[NoiseBoxes]) -> dict[CellId, tuple[float, float]]:
    """What shown cells with the same noise say about the cells this release hides.

    The cell-key method gives the same noise to every cell with the same identity and count, in any table and
    any release: a complement hidden in one table is the very number shown in another (the persons of a
    breakdown level, one identity for both periods), and a cell hidden now whose count has not changed since a
    release that showed it, under any label (a peer is "Peer 2" one quarter and "Peer 3" the next), is known
    from that release to within its noise. ``shown``: this release's own ``shown_boxes`` and those the same
    audience was shown before (kept with the analysts' copy of each release)."""
    hidden = [c for c in ledger if c.released is None and not c.implicit and c.noise_key]
    bounds: dict[CellId, tuple[float, float]] = {}
    for boxes in shown:
        for cell in hidden:
            box = boxes.get(cell.noise_key)
            if box is None:
                continue
            low, high = bounds.get(cell.id, (-math.inf, math.inf))
            bounds[cell.id] = (max(low, box[0]), min(high, box[1]))
    return bounds


def with_twins(ledger: Ledger, cells: Iterable[CellId]) -> set[CellId]:
    """Cells to hide and every cell of the release showing the same number (the same noise key): hiding one
    copy of a number while another stays shown hides nothing."""
    chosen = set(cells)
    keys = {ledger.cells[c].noise_key for c in chosen if c in ledger.cells} - {""}
    return chosen | {c.id for c in ledger if c.noise_key in keys}


def protected(
    build: Callable[[frozenset[CellId]], AudienceRelease],
    earlier: tuple[EarlierRelease, ...] = (),
    earlier_shown: tuple[NoiseBoxes, ...] = (),
) -> tuple[AudienceRelease, AuditReport]:
    """Build an audience's release and hide complements until the auditor recovers nothing, the earlier
    releases this audience was shown included (``cross_release_bounds`` from their files, ``keyed_bounds`` from
    what each kept of the cells it showed), and the cells of this release that show the same number as a hidden
    one (``keyed_bounds``)."""
    forced: frozenset[CellId] = frozenset()
    for _ in range(MAX_ROUNDS):
        release = build(forced)
        release.tables = rounded_tables(release.tables, release.schemas)  # the release precision policy
        for cell, (low, high) in cross_release_bounds(release.ledger, release.schemas, earlier).items():
            release.ledger.bound(cell, low, high)
        for cell, (low, high) in keyed_bounds(release.ledger, (*earlier_shown, shown_boxes(release.ledger))).items():
            release.ledger.bound(cell, low, high)
        zeros = zeros_to_mask(release.ledger) - forced
        if zeros:  # a breakdown of a hidden total of 1 to 10: its zeros are hidden too
            forced = forced | with_twins(release.ledger, zeros)
            continue
        report = audit(release.audience, release.ledger, release.tables, release.schemas, release.problems)
        if report.problems:
            raise PublicationError("; ".join(report.problems))
        if not report.recovered:
            return release, report
        chosen = complements(release.ledger, (r.target for r in report.recovered))
        forced = forced | frozenset(with_twins(release.ledger, chosen))
    raise PublicationError("; ".join(report.messages()))


@dataclass
class Publication:
    funders: AudienceRelease
    agencies: dict[str, AudienceRelease]
    analysts: dict[str, pl.DataFrame]
    reports: list[AuditReport]
    coverage: dict[str, float]


def build_publication(
    marts: Mapping[str, pl.DataFrame],
    secret: bytes,
    earlier_funders: tuple[EarlierRelease, ...] = (),
    earlier_shown: Mapping[str, tuple[NoiseBoxes, ...]] | None = None,
) -> Publication:
    """Every audience's release, each attacked together with what it was shown before: the funders' earlier
    files (``earlier_funders``) and, for every audience, the cells each kept release showed it
    (``earlier_shown``, by audience: ``earlier_shown_cells`` reads them from the kept releases)."""
    shown_before = earlier_shown or {}
    funders, funder_report = protected(
        lambda forced: funder_release(marts, secret, forced), earlier_funders, shown_before.get("funders", ())
    )
    reports = [funder_report]
    released: dict[str, AudienceRelease] = {}
    families = agency.family_inputs(marts)
    for agency_id in agencies(marts):
        released[agency_id], report = protected(
            lambda forced, a=agency_id: agency_release(marts, a, secret, forced, families),  # type: ignore[misc]
            earlier_shown=shown_before.get(f"agency {agency_id}", ()),
        )
        reports.append(report)
    colluding = collusion_problems(released)
    if colluding:
        raise PublicationError("; ".join(colluding))
    coverage = map_coverage(marts["mart_hospital_outcomes"], funders.tables[federation.OUTCOMES])
    analysts = analyst_tables(marts)
    analysts[SHOWN_CELLS] = shown_cells_table([funders, *released.values()])
    return Publication(funders, released, analysts, reports, coverage)


def collusion_problems(agencies: Mapping[str, AudienceRelease]) -> list[str]:
    """Agencies pooling their files: every coalition of all agencies but one, each knowing its own figures
    exactly, attacks the one left out (any smaller coalition knows less, so this covers them all). Messages
    name the tables and columns narrowed, never a cell's value or key."""
    problems = []
    pool = Pool({a: r.ledger for a, r in agencies.items()}, agency.own_figure)
    for left_out in agencies:
        _, recovered = attack(pool.without(left_out))
        if recovered:
            where = sorted({f"{r.target.cell.table}.{r.target.cell.column}" for r in recovered})
            problems.append(
                f"the other agencies together narrow {len(recovered)} hidden counts of agency {left_out} to fewer "
                f"than {PROTECTION_WIDTH + 1} values ({', '.join(where)})"
            )
    return problems


SHOWN_CELLS = "release_shown_cells"
"""The analysts' copy of a release keeps, for every audience, the noise key of each cell it was shown and what
that told the audience (its value within its noise): the next releases are attacked with it."""


def shown_cells_table(releases: Iterable[AudienceRelease]) -> pl.DataFrame:
    rows = [
        {"audience": r.audience, "noise_key": key, "low": low, "high": high}
        for r in releases
        for key, (low, high) in sorted(shown_boxes(r.ledger).items())
    ]
    schema = {"audience": pl.String, "noise_key": pl.String, "low": pl.Float64, "high": pl.Float64}
    return pl.DataFrame(rows, schema=schema, orient="row")


def shown_cells_by_audience(table: pl.DataFrame) -> dict[str, dict[str, tuple[float, float]]]:
    """``shown_cells_table`` read back: audience -> noise key -> (low, high)."""
    found: dict[str, dict[str, tuple[float, float]]] = {}
    for row in table.iter_rows(named=True):
        found.setdefault(row["audience"], {})[row["noise_key"]] = (row["low"], row["high"])
    return found


def map_coverage(mart: pl.DataFrame, released: pl.DataFrame) -> dict[str, float]:
    """Share of persons (care-managed, after the index date) whose région, or département, is drawn with a
    rate on the funders' map (overseas areas, without outlines, count as not shown)."""
    coverage = {}
    base = mart.filter((pl.col("cohort") == "care_managed") & (pl.col("period") == "after"))
    shown = released.filter(
        (pl.col("cohort") == "care_managed")
        & (pl.col("period") == "after")
        & pl.col("unplanned_rate_per_1000py").is_not_null()
    )
    for level in ("region", "departement"):
        total = float(base.filter(pl.col("dimension") == level)["persons"].sum())
        drawn = shown.filter(pl.col("dimension") == level)["dimension_value"].to_list()
        values = set(drawn) & federation.outlined(level)
        inside = base.filter((pl.col("dimension") == level) & pl.col("dimension_value").is_in(values))
        coverage[f"persons_on_map_{level}"] = float(inside["persons"].sum()) / total if total else 0.0
    return coverage


# --- files --------------------------------------------------------------------------------------


def funder_path(serving: Path) -> Path:
    return serving.with_name("parcours_funder.duckdb")


def agency_dir(serving: Path) -> Path:
    return serving.parent / "agencies"


def agency_path(serving: Path, agency_id: str) -> Path:
    if not AGENCY_ID.match(agency_id):
        raise ValueError("not an agency identifier")
    return agency_dir(serving) / f"{agency_id}.duckdb"


def summary_path(serving: Path) -> Path:
    return serving.with_name("release_summary.json")


def released_cutoff(set_by_analysts: date | None, derived: date | None) -> str:
    """The data cut-off as funders and agencies are told it. A cut-off the analysts set (the quarter's end, by
    the schedule) is a parameter: released as it is. One derived from the data is the date of the latest
    event or episode of one person: released as its month only."""
    if set_by_analysts is not None:
        return set_by_analysts.isoformat()
    return derived.strftime("%Y-%m") if derived is not None else ""


def same_tables(read_back: Mapping[str, pl.DataFrame], audited: Mapping[str, pl.DataFrame]) -> bool:
    """Whether a file holds exactly the tables its audit attacked: the same names, columns, types, rows and row
    order. The audit is a function of the tables and the ledger, and ``protected`` returns the ledger it
    audited, so a file read back equal to them would be audited to the same report; any difference (a type the
    file changed, a row it reordered, a table added) is audited again, as written."""
    return set(read_back) == set(audited) and all(
        read_back[name].schema == audited[name].schema and read_back[name].equals(audited[name]) for name in audited
    )


def _written_and_audited(
    con: Any,
    publication: Publication,
    copied: list[str],
    serving: Path,
    metadata: dict[str, str],
    shown: dict[str, str],
) -> tuple[dict[Path, Path], list[AuditReport]]:
    """Every file of the publication written beside the one in service (target -> temporary), and each
    audience's file read back and audited: the protection's own report where it reads back as the tables it
    audited (``same_tables``), a fresh attack on it as written otherwise. A problem refuses the release; on any
    failure no temporary file is left."""
    written: dict[Path, Path] = {}
    # One in-memory connection writes every audience's file and another reads them back: opening a connection
    # took about as long as writing or reading a release file. Neither sees the working database.
    with closing(warehouse.memory_connection()) as writer, closing(warehouse.memory_connection()) as reader:
        try:
            written[serving] = warehouse.write_snapshot(serving, publication.analysts, metadata, con=con, copy=copied)
            written[funder_path(serving)] = warehouse.write_snapshot(
                funder_path(serving), publication.funders.tables, shown, con=writer
            )
            for agency_id, release in publication.agencies.items():
                target = agency_path(serving, agency_id)
                written[target] = warehouse.write_snapshot(target, release.tables, shown, con=writer)
            problems, reports = [], []
            audiences = [(funder_path(serving), publication.funders)] + [
                (agency_path(serving, a), r) for a, r in publication.agencies.items()
            ]
            audited = {r.audience: r for r in publication.reports}
            for target, release in audiences:
                tables = warehouse.read_tables(written[target], exclude=("serving_metadata",), con=reader)
                report = audited.get(release.audience)
                if report is None or not same_tables(tables, release.tables):
                    report = audit(release.audience, release.ledger, tables, release.schemas, release.problems)
                problems += report.messages()
                reports.append(report)
            if problems:
                raise PublicationError("the release was not published: " + "; ".join(problems))
        except BaseException:
            for temporary in written.values():
                temporary.unlink(missing_ok=True)
            raise
    return written, reports


def publish_release(
    con: Any,
    marts: Mapping[str, pl.DataFrame],
    copied: list[str],
    serving: Path,
    metadata: dict[str, str],
    secret: bytes,
    earlier_funders: tuple[EarlierRelease, ...] = (),
    audience_cutoff: str | None = None,
    earlier_shown: Mapping[str, tuple[NoiseBoxes, ...]] | None = None,
) -> dict[str, Any]:
    """Protect, write, re-audit what was written (the protection's own report where the file read back is the
    tables it audited: ``same_tables``), and swap every file in; return the release summary. The
    funders' and agencies' files say ``audience_cutoff`` for the data cut-off when given (``released_cutoff``);
    the analysts' keep the exact one."""
    publication = build_publication(marts, secret, earlier_funders, earlier_shown)
    shown = metadata if audience_cutoff is None else {**metadata, "data_cutoff": audience_cutoff}
    written, reports = _written_and_audited(con, publication, copied, serving, metadata, shown)
    for target, temporary in written.items():
        warehouse.swap_in(temporary, target)
    keep = {agency_path(serving, a) for a in publication.agencies}
    for stale in agency_dir(serving).glob("*.duckdb"):
        if stale not in keep:
            stale.unlink()  # an agency no longer in the federation keeps no release
    summary = {
        "published_at": metadata.get("published_at", ""),
        "audiences": [
            {
                "audience": r.audience,
                "cells": r.cells,
                "released": r.released,
                "perturbed": r.perturbed,
                "hidden": r.hidden,
                "targets": r.targets,
                "recovered": len(r.recovered),
            }
            for r in reports
        ],
        **publication.coverage,
        "min_cell": MIN_CELL,
    }
    staged = summary_path(serving).with_suffix(".json.tmp")
    staged.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    staged.replace(summary_path(serving))
    return summary
