"""An agency's release: its own caseload, referrals, payers, home help and case mix, and anonymous peers
for every outcome family (admissions, carer burden, ruptures repaired, home-help hours delivered, time to
first contact).

Each agency's tables go to a file of its own, so an agency's pages cannot read another's rows.
Its own figures are protected like any released table (they are shown outside the federation's
analysts); peers are shown only in a group of at least ``MIN_PEERS`` other agencies none of
which is more than ``MAX_PEER_SHARE`` of it, labelled Peer 1..n in order of their released
ratio, each with at least ``MIN_CELL`` admissions, ratios and intervals computed from the
released (protected) counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from pipelines.publication.ledger import CellId
from pipelines.publication.protector import Protector, is_small
from pipelines.publication.rules import MAX_PEER_SHARE, MIN_CELL, MIN_PEERS
from pipelines.publication.schema import TableSchema, byar_high, byar_low, ratio

CASELOAD = "release_caseload"
REFERRALS = "release_referrals_payers"
DELIVERY = "release_delivery"
CASE_MIX = "release_case_mix"
BENCHMARK = "release_benchmark"
PEERS = "release_peers"
PEER_OUTCOMES = "release_peer_outcomes"

OWN_TABLES = (CASELOAD, REFERRALS, DELIVERY, CASE_MIX, BENCHMARK)
"""An agency's own figures (its peers are in ``PEERS`` and ``PEER_OUTCOMES``, beside its own row there)."""


def own_figure(cell: CellId) -> bool:
    """Whether a cell of an agency's file is one of its own figures, which it knows exactly (an agency colluding
    with another brings them; ``audit.coalition``)."""
    return cell.table in OWN_TABLES or (cell.table == PEER_OUTCOMES and cell.row[2:3] == ("own",))


PROBLEM_TOO_FEW = "too_few_peers"
PROBLEM_DOMINANT = "dominant_peer"
"""Why peers are not shown (codes; the dashboards put them into words)."""

CASELOAD_SCHEMA = TableSchema(
    name=CASELOAD,
    labels=("agency_id", "month_start"),
    counts=("active_episodes",),
    derived={"episodes_per_fte": lambda r: ratio(r["active_episodes"], r["fte"])},
    safe=("agency_model", "fte", "suppressed"),
)
"""``fte``: the agency's care managers in full-time equivalents (staff, not the people followed)."""
REFERRALS_SCHEMA = TableSchema(
    name=REFERRALS, labels=("agency_id", "cohort", "dimension", "dimension_value"), counts=("episodes",),
    safe=("suppressed",),
)  # fmt: skip
DELIVERY_SCHEMA = TableSchema(
    name=DELIVERY,
    labels=("agency_id", "cohort", "period"),
    counts=("persons", "person_months"),
    magnitudes=("hours_granted", "hours_delivered", "hours_unused"),
    derived={"delivery_ratio": lambda r: ratio(r["hours_delivered"], r["hours_granted"])},
    safe=("suppressed",),
)
CASE_MIX_SCHEMA = TableSchema(
    name=CASE_MIX,
    labels=("agency_id", "cohort"),
    counts=("episodes", "persons", "episodes_with_plan", "gir_1_2_episodes", "living_alone_episodes"),
    derived={
        "share_gir_1_2": lambda r: ratio(r["gir_1_2_episodes"], r["episodes"]),
        "share_living_alone": lambda r: ratio(r["living_alone_episodes"], r["episodes"]),
    },
    guarded={
        "days_to_first_contact_median": ("episodes",),
        "days_to_plan_median": ("episodes_with_plan",),
        "age_mean": ("episodes",),
    },
    safe=("suppressed",),
)
_RATIO = {
    "observed_over_expected": lambda r: ratio(r["observed"], r["expected"]),
    "ratio_ci_low": lambda r: byar_low(r["observed"], r["expected"], scale=1.0),
    "ratio_ci_high": lambda r: byar_high(r["observed"], r["expected"], scale=1.0),
}
BENCHMARK_SCHEMA = TableSchema(
    name=BENCHMARK,
    labels=("agency_id",),
    counts=("episodes", "observed"),
    magnitudes=("person_years", "expected"),
    derived=_RATIO,
    safe=("agency_model", "interpretation", "peer_problem", "suppressed"),
)
PEERS_SCHEMA = TableSchema(
    name=PEERS,
    labels=("for_agency", "peer"),
    counts=("observed",),
    magnitudes=("expected",),
    derived=_RATIO,
    safe=("peer_agency_id",),
)
"""``peer_agency_id`` is empty in every release but the analysts'."""


def _agency_rows(mart: pl.DataFrame, agency: str) -> pl.DataFrame:
    return mart.filter((pl.col("dimension") == "agency") & (pl.col("dimension_value") == agency))


def caseload_table(mart: pl.DataFrame, agency: str, protector: Protector) -> pl.DataFrame:
    rows = []
    for row in mart.filter(pl.col("agency_id") == agency).sort("month_start").iter_rows(named=True):
        month = row["month_start"].isoformat()
        cell = CellId(CASELOAD, (agency, month), "active_episodes")
        # Active episodes are averaged over the month's days; released as a whole count.
        active = protector.count(cell, row["active_episodes"], ("caseload", agency, month))
        out = {"agency_id": agency, "agency_model": row["agency_model"], "month_start": row["month_start"],
               "active_episodes": active, "fte": row["fte"]}  # fmt: skip
        out["episodes_per_fte"] = CASELOAD_SCHEMA.derived["episodes_per_fte"](out)
        out["suppressed"] = active is None
        rows.append(out)
    return pl.DataFrame(
        rows, orient="row",
        schema={"agency_id": pl.String, "agency_model": pl.String, "month_start": pl.Date, "active_episodes": pl.Int64,
                "fte": pl.Float64, "episodes_per_fte": pl.Float64, "suppressed": pl.Boolean},
    )  # fmt: skip


def referrals_table(mart: pl.DataFrame, agency: str, protector: Protector) -> pl.DataFrame:
    """Episodes by referrer and by payer: two breakdowns of the same episodes, so each hidden cell is
    related to the other breakdown through their shared (unshown) total."""
    rows = []
    frame = mart.filter(pl.col("agency_id") == agency).sort("cohort", "dimension", "dimension_value")
    for (cohort,), part in frame.group_by("cohort", maintain_order=True):
        total = protector.implicit(CellId(REFERRALS, (agency, str(cohort), "all", "all"), "episodes"),
                                   float(part.filter(pl.col("dimension") == "payer")["episodes"].sum()))  # fmt: skip
        for (dimension,), level in part.group_by("dimension", maintain_order=True):
            cells = []
            for row in level.iter_rows(named=True):
                labels = (agency, str(cohort), str(dimension), row["dimension_value"])
                cell = CellId(REFERRALS, labels, "episodes")
                episodes = protector.count(cell, row["episodes"], ("referrals", *labels))
                rows.append(dict(zip(REFERRALS_SCHEMA.labels, labels, strict=True))
                            | {"episodes": episodes, "suppressed": episodes is None})  # fmt: skip
                cells.append(cell)
            protector.relate(f"episodes by {dimension}", total, cells)
    return pl.DataFrame(
        rows, orient="row", schema={**dict.fromkeys(REFERRALS_SCHEMA.labels, pl.String), "episodes": pl.Int64,
                                    "suppressed": pl.Boolean},
    )  # fmt: skip


def delivery_table(mart: pl.DataFrame, agency: str, protector: Protector) -> pl.DataFrame:
    rows = []
    for row in _agency_rows(mart, agency).sort("cohort", "period").iter_rows(named=True):
        labels = (agency, row["cohort"], row["period"])
        identity = ("delivery", *labels)
        persons = protector.count(CellId(DELIVERY, labels, "persons"), row["persons"], (*identity, "persons"))
        hidden = persons is None
        out: dict[str, Any] = {
            "agency_id": agency,
            "cohort": row["cohort"],
            "period": row["period"],
            "persons": persons,
        }
        out["person_months"] = protector.count(
            CellId(DELIVERY, labels, "person_months"), row["person_months"], (*identity, "months"), hide=hidden
        )
        for column in DELIVERY_SCHEMA.magnitudes:
            out[column] = protector.magnitude(
                CellId(DELIVERY, labels, column), row[column], (*identity, column), hide=hidden, digits=0
            )
        out["delivery_ratio"] = DELIVERY_SCHEMA.derived["delivery_ratio"](out)
        out["suppressed"] = hidden
        protector.relate("persons and their months", CellId(DELIVERY, labels, "person_months"),
                         [CellId(DELIVERY, labels, "persons")])  # fmt: skip
        rows.append(out)
    return pl.DataFrame(
        rows, orient="row",
        schema={"agency_id": pl.String, "cohort": pl.String, "period": pl.String, "persons": pl.Int64,
                "person_months": pl.Int64, "hours_granted": pl.Float64, "hours_delivered": pl.Float64,
                "hours_unused": pl.Float64, "delivery_ratio": pl.Float64, "suppressed": pl.Boolean},
    )  # fmt: skip


def case_mix_table(mart: pl.DataFrame, agency: str, protector: Protector) -> pl.DataFrame:
    """Case mix with shares rebuilt from protected counts (a share of a known total is a count)."""
    rows = []
    for row in _agency_rows(mart, agency).sort("cohort").iter_rows(named=True):
        labels = (agency, row["cohort"])
        identity = ("case mix", *labels)

        def cell(column: str, labels: tuple[str, ...] = labels) -> CellId:
            return CellId(CASE_MIX, labels, column)

        episodes_true = int(row["episodes"])
        episodes = protector.count(cell("episodes"), episodes_true, (*identity, "episodes"))
        hidden = episodes is None
        out: dict[str, Any] = {"agency_id": agency, "cohort": row["cohort"], "episodes": episodes}
        out["persons"] = protector.count(cell("persons"), row["persons"], (*identity, "persons"), hide=hidden)
        plan = row["episodes_with_plan"]
        out["episodes_with_plan"] = protector.count(
            cell("episodes_with_plan"), plan, (*identity, "with plan"), hide=hidden or is_small(episodes_true - plan)
        )
        for share, column in (("share_gir_1_2", "gir_1_2_episodes"), ("share_living_alone", "living_alone_episodes")):
            part = round((row[share] or 0.0) * episodes_true)
            out[column] = protector.count(
                cell(column), part, (*identity, column), hide=hidden or is_small(episodes_true - part)
            )
            protector.relate(f"episodes and {column}", cell("episodes"), [cell(column)])
        protector.relate("persons and their episodes", cell("episodes"), [cell("persons")])
        protector.relate("episodes with a plan", cell("episodes"), [cell("episodes_with_plan")])
        for part in ("persons", "episodes_with_plan", "gir_1_2_episodes", "living_alone_episodes"):
            # Never more persons (or episodes with a plan…) than episodes shown, whatever their separate noise.
            out[part] = protector.never_rising([cell("episodes"), cell(part)]).get(cell(part), out[part])
        for column, derive in CASE_MIX_SCHEMA.derived.items():
            out[column] = derive(out)
        for column, guards in CASE_MIX_SCHEMA.guarded.items():
            out[column] = row[column] if all(out[g] is not None for g in guards) else None
        out["suppressed"] = any(out[c] is None for c in CASE_MIX_SCHEMA.counts)
        rows.append(out)
    return pl.DataFrame(
        rows, orient="row",
        schema={"agency_id": pl.String, "cohort": pl.String, **dict.fromkeys(CASE_MIX_SCHEMA.counts, pl.Int64),
                **dict.fromkeys(CASE_MIX_SCHEMA.derived, pl.Float64),
                **dict.fromkeys(CASE_MIX_SCHEMA.guarded, pl.Float64), "suppressed": pl.Boolean},
    )  # fmt: skip


def peer_group_problem(own_agency: str, sizes: Mapping[str, int]) -> str | None:
    """Why the peers of ``own_agency`` may not be shown (``PROBLEM_TOO_FEW``, ``PROBLEM_DOMINANT``), or None.

    A peer group needs at least ``MIN_PEERS`` other agencies, none of them more than
    ``MAX_PEER_SHARE`` of the group's size: otherwise a peer "average" is one agency's figure.
    """
    peers = {agency: n for agency, n in sizes.items() if agency != own_agency}
    if len(peers) < MIN_PEERS:
        return PROBLEM_TOO_FEW
    total = sum(peers.values())
    if total and max(peers.values()) > MAX_PEER_SHARE * total:
        return PROBLEM_DOMINANT
    return None


def benchmark_tables(mart: pl.DataFrame, agency: str, protector: Protector) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The agency's own observed/expected row, and its anonymous peers."""
    frame = mart.sort("agency_id")
    sizes = dict(zip(frame["agency_id"].to_list(), frame["episodes"].to_list(), strict=True))
    problem = peer_group_problem(agency, sizes)
    own_rows = []
    for row in frame.filter(pl.col("agency_id") == agency).iter_rows(named=True):
        identity = ("benchmark", agency)
        episodes = protector.count(CellId(BENCHMARK, (agency,), "episodes"), row["episodes"], (*identity, "episodes"))
        hidden = episodes is None
        out: dict[str, Any] = {"agency_id": agency, "agency_model": row["agency_model"], "episodes": episodes}
        out["observed"] = protector.count(
            CellId(BENCHMARK, (agency,), "observed"), row["observed"], (*identity, "observed"), hide=hidden
        )
        for column in BENCHMARK_SCHEMA.magnitudes:
            out[column] = protector.magnitude(
                CellId(BENCHMARK, (agency,), column), row[column], (*identity, column), hide=hidden
            )
        out |= {c: derive(out) for c, derive in _RATIO.items()}
        out |= {"interpretation": row["interpretation"], "peer_problem": problem or "", "suppressed": hidden}
        own_rows.append(out)
    peer_rows = []
    if problem is None or not protector.protects:
        for row in frame.filter(pl.col("agency_id") != agency).iter_rows(named=True):
            if protector.protects and row["observed"] < MIN_CELL:
                continue  # a peer with few admissions is left out altogether
            key = (agency, row["agency_id"])
            # Labelled later by rank: the ledger keys peers by (viewer, peer id), which never leaves it.
            observed = protector.count(CellId(PEERS, key, "observed"), row["observed"],
                                       ("benchmark", row["agency_id"], "observed"))  # fmt: skip
            expected = protector.magnitude(CellId(PEERS, key, "expected"), row["expected"],
                                           ("benchmark", row["agency_id"], "expected"))  # fmt: skip
            out = {"for_agency": agency, "peer_agency_id": row["agency_id"], "observed": observed, "expected": expected}
            peer_rows.append(out | {c: derive(out) for c, derive in _RATIO.items()})
    peer_rows.sort(key=lambda r: (r["observed_over_expected"] is None, r["observed_over_expected"] or 0.0))
    for rank, out in enumerate(peer_rows, start=1):
        out["peer"] = f"Peer {rank}"
        if protector.protects:
            _relabel_peer(protector, agency, out["peer_agency_id"], out["peer"])
            out["peer_agency_id"] = ""
    own = pl.DataFrame(
        own_rows, orient="row",
        schema={"agency_id": pl.String, "agency_model": pl.String, "episodes": pl.Int64, "observed": pl.Int64,
                "person_years": pl.Float64, "expected": pl.Float64, **dict.fromkeys(_RATIO, pl.Float64),
                "interpretation": pl.String, "peer_problem": pl.String, "suppressed": pl.Boolean},
    )  # fmt: skip
    peers = pl.DataFrame(
        peer_rows, orient="row",
        schema={"for_agency": pl.String, "peer_agency_id": pl.String, "observed": pl.Int64, "expected": pl.Float64,
                **dict.fromkeys(_RATIO, pl.Float64), "peer": pl.String},
    )  # fmt: skip
    return own, peers


def _relabel_peer(protector: Protector, agency: str, peer_id: str, label: str) -> None:
    """Key the peer's ledger cells by its anonymous label, as the released table does."""
    for column in ("observed", "expected"):
        cell = protector.ledger.cells.pop(CellId(PEERS, (agency, peer_id), column))
        cell.id = CellId(PEERS, (agency, label), column)
        protector.ledger.cells[cell.id] = cell


# --- every other outcome family against anonymous peers ------------------------------------------------

FAMILIES = ("carer_burden", "ruptures", "delivered_hours", "first_contact")
"""Outcome families compared as shares (admissions are compared as observed/expected, above):

* ``carer_burden``: carers in the severe Zarit band at enrolment, with a 12-month assessment (``cases``), who
  left that band within 12 months (``events``);
* ``ruptures``: ruptures in care after enrolment (``cases``) repaired within their target (``events``);
* ``delivered_hours``: home-help hours delivered (``amount``) over hours granted (``base``) after enrolment,
  over ``cases`` person-months;
* ``first_contact``: episodes with a first contact (``cases``) contacted within 7 days of referral (``events``).

All for care-managed episodes. Shares and their intervals are computed from the released values only."""


def _share(row: Mapping[str, Any]) -> float | None:
    if row["family"] == "delivered_hours":
        return ratio(row["amount"], row["base"])
    return ratio(row["events"], row["cases"])


def wilson(events: float | None, cases: float | None, z: float) -> tuple[float, float] | None:
    """The Wilson score interval of a share (always within [0, 1])."""
    if events is None or cases is None or cases <= 0:
        return None
    p = min(max(events / cases, 0.0), 1.0)
    centre = (p + z * z / (2 * cases)) / (1 + z * z / cases)
    half = z * (p * (1 - p) / cases + z * z / (4 * cases * cases)) ** 0.5 / (1 + z * z / cases)
    return max(0.0, centre - half), min(1.0, centre + half)


def _share_low(row: Mapping[str, Any]) -> float | None:
    bounds = None if row["family"] == "delivered_hours" else wilson(row["events"], row["cases"], 1.959964)
    return None if bounds is None else bounds[0]


def _share_high(row: Mapping[str, Any]) -> float | None:
    bounds = None if row["family"] == "delivered_hours" else wilson(row["events"], row["cases"], 1.959964)
    return None if bounds is None else bounds[1]


PEER_OUTCOMES_SCHEMA = TableSchema(
    name=PEER_OUTCOMES,
    labels=("for_agency", "family", "peer"),
    counts=("cases", "events"),
    magnitudes=("amount", "base"),
    derived={"value": _share, "ci_low": _share_low, "ci_high": _share_high},
    safe=("peer_agency_id", "problem"),
)
"""``peer`` is ``own`` for the agency's own row, ``Peer 1..n`` for the others (ranked by their released share);
``peer_agency_id`` is empty in every release but the analysts'."""


def family_inputs(marts: Mapping[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """Per family, one row per agency (care-managed): ``agency_id``, ``cases``, ``events``, ``amount``, ``base``."""
    schema = {
        "agency_id": pl.String,
        "cases": pl.Int64,
        "events": pl.Int64,
        "amount": pl.Float64,
        "base": pl.Float64,
        "persons": pl.Int64,
    }

    def agencies(frame: pl.DataFrame, period: bool = True) -> pl.DataFrame:
        keep = (pl.col("dimension") == "agency") & (pl.col("cohort") == "care_managed")
        if period:
            keep = keep & (pl.col("period") == "after")
        return frame.filter(keep).rename({"dimension_value": "agency_id"})

    carers = agencies(marts["mart_carer_load"], period=False).select(
        "agency_id",
        pl.col("severe_at_baseline_with_12m").alias("cases"),
        pl.col("left_severe_band").alias("events"),
        pl.lit(None, pl.Float64).alias("amount"),
        pl.lit(None, pl.Float64).alias("base"),
        pl.lit(None, pl.Int64).alias("persons"),
    )
    ruptures = (
        agencies(marts["mart_ruptures"])
        .group_by("agency_id")
        .agg(
            pl.col("ruptures").sum().alias("cases"),
            (pl.col("share_repaired_within_target").fill_null(0.0) * pl.col("ruptures")).sum().round(0).alias("events"),
        )
        .with_columns(
            pl.lit(None, pl.Float64).alias("amount"),
            pl.lit(None, pl.Float64).alias("base"),
            pl.lit(None, pl.Int64).alias("persons"),
        )
    )
    hours = agencies(marts["mart_service_delivery"]).select(
        "agency_id",
        pl.col("person_months").alias("cases"),
        pl.lit(None, pl.Int64).alias("events"),
        pl.col("hours_delivered").alias("amount"),
        pl.col("hours_granted").alias("base"),
        "persons",
    )
    contact = agencies(marts["mart_timeliness_case_mix"], period=False).select(
        "agency_id",
        pl.col("episodes_with_contact").alias("cases"),
        pl.col("episodes_contacted_within_7_days").alias("events"),
        pl.lit(None, pl.Float64).alias("amount"),
        pl.lit(None, pl.Float64).alias("base"),
        pl.lit(None, pl.Int64).alias("persons"),
    )
    frames = {"carer_burden": carers, "ruptures": ruptures, "delivered_hours": hours, "first_contact": contact}
    return {k: v.select(pl.col(c).cast(t) for c, t in schema.items()).sort("agency_id") for k, v in frames.items()}


def _family_row(
    family: str, agency: str, peer: str, source: dict[str, Any], protector: Protector, hide: bool = False
) -> dict[str, Any]:
    """One agency's figures for a family, protected: the same cell has the same noise in every agency's file."""
    subject = source["agency_id"]
    key = (agency, family, peer)

    def cell(column: str) -> CellId:
        return CellId(PEER_OUTCOMES, key, column)

    if family == "delivered_hours":  # the very cells of the agency's own delivery table: one noise each
        identity: tuple[str, ...] = ("delivery", subject, "care_managed", "after")
        # Hidden with the row's persons, as in the delivery table: months and hours on 1 to 10 people say too much.
        hide = hide or is_small(source["persons"])
        cases = protector.count(cell("cases"), source["cases"], (*identity, "months"), hide=hide)
        hidden = cases is None
        out: dict[str, float | None] = {"cases": cases, "events": None}
        out["amount"] = protector.magnitude(
            cell("amount"), source["amount"], (*identity, "hours_delivered"), hide=hidden, digits=0
        )
        out["base"] = protector.magnitude(
            cell("base"), source["base"], (*identity, "hours_granted"), hide=hidden, digits=0
        )
    else:
        identity = ("peer outcomes", family, subject)
        cases_true, events_true = int(source["cases"] or 0), int(source["events"] or 0)
        cases = protector.count(cell("cases"), cases_true, (*identity, "cases"), hide=hide)
        hidden = cases is None
        # A share is a count when its complement is small ("95% of 40" says 2 are not): hidden then too.
        events = protector.count(
            cell("events"), events_true, (*identity, "events"), hide=hidden or is_small(cases_true - events_true)
        )
        protector.relate(f"{family}: events among cases", cell("cases"), [cell("events")])
        out = {"cases": cases, "events": events, "amount": None, "base": None}
    row = {"for_agency": agency, "family": family, "peer": peer, "peer_agency_id": subject, **out}
    row |= {c: derive(row) for c, derive in PEER_OUTCOMES_SCHEMA.derived.items()}
    return row


def peer_outcomes_table(
    marts: Mapping[str, pl.DataFrame],
    agency: str,
    protector: Protector,
    families: Mapping[str, pl.DataFrame] | None = None,
) -> pl.DataFrame:
    """The agency and its anonymous peers for every family of ``FAMILIES``; ``families``: ``family_inputs(marts)``
    when the caller has it already (the same for every agency).

    Peers are ranked by their released share, computed first on a scratch protector (the cell key makes the
    noise a function of the cell and its count, so the scratch values are the released ones); each peer is then
    protected under its anonymous label, so that the ledger, the relations and any cell the auditor asks to
    hide all name the label, never the agency."""
    rows = []
    for family, frame in (family_inputs(marts) if families is None else families).items():
        sizes = {r["agency_id"]: int(r["cases"] or 0) for r in frame.iter_rows(named=True)}
        problem = peer_group_problem(agency, sizes)
        own = frame.filter(pl.col("agency_id") == agency)
        if own.height:
            rows.append(
                _family_row(family, agency, "own", own.row(0, named=True), protector) | {"problem": problem or ""}
            )
        if problem is not None and protector.protects:
            continue
        scratch = Protector(protector.audience, protector.secret)
        candidates = []
        for source in frame.filter(pl.col("agency_id") != agency).iter_rows(named=True):
            if protector.protects and (source["cases"] or 0) < MIN_CELL:
                continue  # a peer with few cases is left out altogether
            ranked = _family_row(family, agency, str(source["agency_id"]), source, scratch)
            candidates.append((ranked["value"] is None, ranked["value"] or 0.0, str(source["agency_id"]), source))
        for rank, (_, _, _, source) in enumerate(sorted(candidates), start=1):
            out = _family_row(family, agency, f"Peer {rank}", source, protector)
            if protector.protects:
                out["peer_agency_id"] = ""
            rows.append(out | {"problem": ""})
    return pl.DataFrame(
        rows,
        orient="row",
        schema={
            "for_agency": pl.String,
            "family": pl.String,
            "peer": pl.String,
            "peer_agency_id": pl.String,
            "cases": pl.Int64,
            "events": pl.Int64,
            "amount": pl.Float64,
            "base": pl.Float64,
            "value": pl.Float64,
            "ci_low": pl.Float64,
            "ci_high": pl.Float64,
            "problem": pl.String,
        },
    ).select(PEER_OUTCOMES_SCHEMA.columns)
