"""The true effect of care management on the treated, computed as the studies define their outcomes.

Every estimand is a *sample* ATT: the treated episodes' outcome in the world we observe minus
the same episodes' outcome had their person never been care-managed, both read from the
potential-outcome tables the generator keeps (``PotentialOutcomes``; common random numbers, so
the difference is exact, not estimated). The functions are pure: give them another window, or a
subgroup (``where``, a Polars expression on ``PotentialOutcomes.episodes``), and they compute
that truth.

Which episodes and which person-time count, as in ``pipelines/impact/study.py``:

* every care-managed episode is its own unit, whether or not its person has other episodes
  (a person's overlapping or successive episodes each count, and each sees every event of its
  person in its own window, whichever agency sent it);
* an episode's window is its first ``follow_up_days`` days from the index date (day 0), cut at
  the end of its follow-up (``end_date``, else the extraction date); ``None`` is the whole
  follow-up;
* rates are events in the windows over the windows' person-years (days / 365.25), times 1,000;
* ``zarit_change_12m``: the episode's own 12-month assessment (closest to day 365 within
  ``window_days``, before its follow-up ends) minus its baseline (closest to day 0, from 30 days
  before to 60 after), over the treated episodes with both and a carer;
* ``rupture_repair_days``: days without help (to the repair, or to the end of follow-up while
  unrepaired) per service interruption starting in the window and followed for at least
  ``observation_days`` after it starts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import polars as pl

DAYS_PER_YEAR = 365.25
LOOKAHEAD_DAYS = 7
"""Events are kept this many days past each episode's follow-up, so that an emergency visit on its
last day can be matched with an admission the next day (as ``fct_emergency_visits`` does)."""

NEGATIVE_CONTROL_GROUPS = (
    "appendicitis",
    "biliary_disease",
    "intestinal_obstruction",
    "kidney_stone",
    "diverticulitis",
    "pancreatitis",
)
"""Admission diagnosis groups care management cannot influence (``docs/outcomes.md``)."""


@dataclass
class PotentialOutcomes:
    """What the generator knows of every care-managed episode, keyed by the export's ``episode_id``.

    ``episodes``: one row per care-managed episode: ``episode_id``, ``person_id`` (its agency's),
    ``agency_id``, ``agency_model``, ``start_date``, ``follow_up_end``, ``follow_up_days``,
    ``gir_band``, ``lives_alone``, ``age_band``, ``kind`` (first, return, care_management_while_comparison),
    ``other_episodes`` (its person's other episodes, any agency).
    ``events``: one row per hospital admission, emergency visit and fall of the episode's person from
    its index date to ``LOOKAHEAD_DAYS`` past its follow-up, in either world: ``episode_id``,
    ``event_type``, ``event_date``, ``days_from_index``, ``planned``, ``diagnosis_group``,
    ``under_treatment``, ``under_control``.
    ``interruptions``: service interruptions starting during follow-up: ``episode_id``,
    ``event_date``, ``days_from_index``, ``restored_under_treatment``, ``restored_under_control``.
    ``assessments``: the episode's assessments with a carer: ``episode_id``, ``days_from_index``,
    ``zarit_under_treatment``, ``zarit_under_control``.
    """

    episodes: pl.DataFrame
    events: pl.DataFrame
    interruptions: pl.DataFrame
    assessments: pl.DataFrame


@dataclass(frozen=True)
class Estimand:
    outcome: str
    unit: str
    att: float | None
    """Treated value minus counterfactual value."""
    treated_value: float | None
    counterfactual_value: float | None
    episodes: int
    """Treated episodes in the estimand (with a carer and both assessments, or an interruption, where it says)."""
    denominator: float
    """Person-years, interruptions or carers."""
    observed: float
    """Events, days or points summed in the world we observe."""
    counterfactual: float
    follow_up_days: int | None
    definition: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _windows(po: PotentialOutcomes, follow_up_days: int | None, where: pl.Expr | None) -> pl.DataFrame:
    episodes = po.episodes if where is None else po.episodes.filter(where)
    window = pl.col("follow_up_days") if follow_up_days is None else pl.min_horizontal("follow_up_days", follow_up_days)
    return episodes.select("episode_id", "follow_up_end", window.alias("window_days"))


def _ratio(numerator: float, denominator: float, scale: float = 1.0) -> float | None:
    return scale * numerator / denominator if denominator else None


def event_rate(
    po: PotentialOutcomes,
    outcome: str,
    selector: pl.Expr,
    follow_up_days: int | None = 365,
    where: pl.Expr | None = None,
    definition: str = "",
) -> Estimand:
    """Events chosen by ``selector`` per 1,000 person-years in the treated episodes' windows."""
    windows = _windows(po, follow_up_days, where)
    events = po.events.join(windows, on="episode_id").filter(
        selector & (pl.col("days_from_index") >= 0) & (pl.col("days_from_index") < pl.col("window_days"))
    )
    observed = int(events["under_treatment"].sum())
    counterfactual = int(events["under_control"].sum())
    years = float(windows["window_days"].sum()) / DAYS_PER_YEAR
    treated = _ratio(observed, years, 1000.0)
    control = _ratio(counterfactual, years, 1000.0)
    return Estimand(
        outcome, "per 1,000 person-years", None if treated is None or control is None else treated - control,
        treated, control, windows.height, years, observed, counterfactual, follow_up_days, definition,
    )  # fmt: skip


UNPLANNED = (pl.col("event_type") == "hospital_admission") & ~pl.col("planned").fill_null(False)


def unplanned_admissions(
    po: PotentialOutcomes, follow_up_days: int | None = 365, where: pl.Expr | None = None
) -> Estimand:
    return event_rate(po, "unplanned_admissions", UNPLANNED, follow_up_days, where, "admissions not marked planned")


def admissions_for(
    po: PotentialOutcomes, diagnosis_group: str, follow_up_days: int | None = 365, where: pl.Expr | None = None
) -> Estimand:
    """Unplanned admissions of one diagnosis group (``admissions_<group>``)."""
    return event_rate(
        po, f"admissions_{diagnosis_group}", UNPLANNED & (pl.col("diagnosis_group") == diagnosis_group),
        follow_up_days, where, f"unplanned admissions with diagnosis group {diagnosis_group}",
    )  # fmt: skip


def emergency_visits(po: PotentialOutcomes, follow_up_days: int | None = 365, where: pl.Expr | None = None) -> Estimand:
    return event_rate(
        po, "emergency_visits", pl.col("event_type") == "emergency_visit", follow_up_days, where,
        "every emergency visit, followed by an admission or not",
    )  # fmt: skip


def falls(po: PotentialOutcomes, follow_up_days: int | None = 365, where: pl.Expr | None = None) -> Estimand:
    return event_rate(po, "falls", pl.col("event_type") == "fall", follow_up_days, where, "falls recorded")


def emergency_visits_without_admission(
    po: PotentialOutcomes, follow_up_days: int | None = 365, where: pl.Expr | None = None, ed_admission_days: int = 1
) -> Estimand:
    """Emergency visits not followed by an admission (planned or not) within ``ed_admission_days``, in each world."""
    if ed_admission_days > LOOKAHEAD_DAYS:
        raise ValueError(f"ed_admission_days can be at most {LOOKAHEAD_DAYS}")
    windows = _windows(po, follow_up_days, where)
    events = po.events.join(windows, on="episode_id")
    visits = events.filter(
        (pl.col("event_type") == "emergency_visit")
        & (pl.col("days_from_index") >= 0)
        & (pl.col("days_from_index") < pl.col("window_days"))
    ).with_row_index("visit")
    admissions = events.filter(pl.col("event_type") == "hospital_admission").select(
        "episode_id", pl.col("days_from_index").alias("admission_day"), "under_treatment", "under_control"
    )
    followed = (
        visits.select("visit", "episode_id", "days_from_index")
        .join(admissions, on="episode_id")
        .filter(
            pl.col("admission_day").is_between(pl.col("days_from_index"), pl.col("days_from_index") + ed_admission_days)
        )
        .group_by("visit")
        .agg(pl.col("under_treatment").any().alias("followed_t"), pl.col("under_control").any().alias("followed_c"))
    )
    alone = visits.join(followed, on="visit", how="left").with_columns(
        pl.col("followed_t").fill_null(False), pl.col("followed_c").fill_null(False)
    )
    observed = int((alone["under_treatment"] & ~alone["followed_t"]).sum())
    counterfactual = int((alone["under_control"] & ~alone["followed_c"]).sum())
    years = float(windows["window_days"].sum()) / DAYS_PER_YEAR
    treated = _ratio(observed, years, 1000.0)
    control = _ratio(counterfactual, years, 1000.0)
    return Estimand(
        "emergency_visits_without_admission", "per 1,000 person-years",
        None if treated is None or control is None else treated - control, treated, control, windows.height, years,
        observed, counterfactual, follow_up_days,
        f"emergency visits not followed by an admission within {ed_admission_days} day(s)",
    )  # fmt: skip


def zarit_change_12m(po: PotentialOutcomes, where: pl.Expr | None = None, window_days: int = 60) -> Estimand:
    """Change of the carer's Zarit score from baseline to 12 months, as ``fct_carer_load`` measures it."""
    episodes = po.episodes if where is None else po.episodes.filter(where)
    offset = pl.col("days_from_index")
    timed = (
        po.assessments.join(episodes.select("episode_id", "follow_up_days"), on="episode_id")
        .filter(offset.is_between(-30, pl.col("follow_up_days") - 1))
        .with_columns(
            pl.when(offset.is_between(-30, 60))
            .then(0)
            .when((offset - 182).abs() <= window_days)
            .then(6)
            .when((offset - 365).abs() <= window_days)
            .then(12)
            .alias("time_point")
        )
        .filter(pl.col("time_point").is_in([0, 12]))
        .with_columns(
            (offset - pl.when(pl.col("time_point") == 0).then(0).otherwise(365)).abs().alias("distance"),
        )
        .sort(["episode_id", "time_point", "distance", "days_from_index"])
        .group_by(["episode_id", "time_point"], maintain_order=True)
        .first()
    )
    wide = (
        timed.filter(pl.col("time_point") == 0)
        .select("episode_id", pl.col("zarit_under_treatment").alias("t0"), pl.col("zarit_under_control").alias("c0"))
        .join(
            timed.filter(pl.col("time_point") == 12).select(
                "episode_id", pl.col("zarit_under_treatment").alias("t12"), pl.col("zarit_under_control").alias("c12")
            ),
            on="episode_id",
        )
    )
    n = wide.height
    observed = float((wide["t12"] - wide["t0"]).sum()) if n else 0.0
    counterfactual = float((wide["c12"] - wide["c0"]).sum()) if n else 0.0
    treated = _ratio(observed, n)
    control = _ratio(counterfactual, n)
    return Estimand(
        "zarit_change_12m", "Zarit points", None if treated is None or control is None else treated - control,
        treated, control, n, n, observed, counterfactual, None,
        "12-month Zarit score (22-item form) minus baseline, for carers assessed at both",
    )  # fmt: skip


def rupture_repair_days(
    po: PotentialOutcomes, follow_up_days: int | None = 365, where: pl.Expr | None = None, observation_days: int = 180
) -> Estimand:
    """Days without help per service interruption, as the repair study counts them."""
    windows = _windows(po, follow_up_days, where)
    seen = po.interruptions.join(windows, on="episode_id").filter(
        (pl.col("days_from_index") >= 0)
        & (pl.col("days_from_index") < pl.col("window_days"))
        & ((pl.col("follow_up_end") - pl.col("event_date")).dt.total_days() >= observation_days)
    )

    def days(restored: str) -> float:
        end = pl.min_horizontal(pl.col(restored), pl.col("follow_up_end"))
        return float(seen.select((end - pl.col("event_date")).dt.total_days().sum()).item() or 0)

    n = seen.height
    observed, counterfactual = days("restored_under_treatment"), days("restored_under_control")
    treated = _ratio(observed, n)
    control = _ratio(counterfactual, n)
    return Estimand(
        "rupture_repair_days", "days without help per service interruption",
        None if treated is None or control is None else treated - control, treated, control,
        seen["episode_id"].n_unique(), n, observed, counterfactual, follow_up_days,
        f"service interruptions starting in the window and followed for at least {observation_days} days",
    )  # fmt: skip


def estimands(
    po: PotentialOutcomes, follow_up_days: int = 365, where: pl.Expr | None = None
) -> dict[str, dict[str, Any]]:
    """Every outcome's truth for one window (and subgroup): what ``ground_truth.json`` holds under ``estimands``."""
    results = [
        unplanned_admissions(po, follow_up_days, where),
        emergency_visits(po, follow_up_days, where),
        emergency_visits_without_admission(po, follow_up_days, where),
        falls(po, follow_up_days, where),
        zarit_change_12m(po, where),
        rupture_repair_days(po, follow_up_days, where),
        *(admissions_for(po, group, follow_up_days, where) for group in NEGATIVE_CONTROL_GROUPS),
    ]
    return {result.outcome: result.as_json() for result in results}
