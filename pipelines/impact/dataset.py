"""A study's dataset: one row per episode of its population, with covariates, outcomes and history.

Outcomes are per episode: each episode is its own unit and sees every event of its person in
its own windows (an admission during two overlapping episodes counts once in each, which is
right for a per-episode outcome; the marts attribute events once, docs/outcomes.md).

**Comparison episodes care-managed elsewhere** (``fct_episodes.concurrent_care_management``: the
same person, through the linkage pseudonym, in a care-managed episode at the same time) leave
the study and are counted in the attrition table.

**History actually available.** An agency's records begin at its earliest event; an episode
whose required history (``StudySpec.history_months``: the pre-period of a difference-in-
differences, or the longest window a prior-use covariate counts) starts before its agency's
records is **excluded** and counted in the attrition table, never treated as a person with no
admissions.

**A person's events once, whichever agency sent them.** Every count here (admissions after the
index date, prior use, admissions by month and diagnosis group) reads ``int_events`` by
``person_key``: a person followed by two agencies (the same linkage pseudonym) has their events
counted once, including those only the other agency sent; the copy kept is the most complete
(with its diagnosis). Attributes at intake (conditions) are the episode's own agency's record.

**Prior use** is counted in several pre-set windows before the index date (``PRIOR_USE_COUNTS``
in ``spec.py``: unplanned admissions, emergency visits and falls in months 0-1, 1-3, 3-6, 6-12
and 12-24), so that no study is written for one referral crisis's length.

Admissions are also counted by month before the index date (month 1 = days 1-30 before it;
months of 365.25 / 12 days) up to the longest history a study can ask for, and after it within
the study's window: the windows of a difference-in-differences (baseline, washout, placebo
halves, dip) are sums over those months (``did.py``).
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl

from pipelines import warehouse
from pipelines.impact.spec import (
    ADMISSION_CONTROL_PREFIX,
    COVARIATES,
    MEAN_OUTCOMES,
    MONTH_DAYS,
    PRIOR_USE_COUNTS,
    StudySpec,
    control_group,
)

REPAIR_OBSERVATION_DAYS = 180
"""A service interruption counts in the repair study only when its episode is followed for at
least this long after it starts, so that its repair is seen (fewer than 1 in 100 take longer)."""
ALL_UNPLANNED = "all"
"""The key of all unplanned admissions in ``Admissions`` (the others are diagnosis groups)."""

STUDY_BASE = """
with base as (
    select
        episodes.*,
        persons.main_conditions,
        least(episodes.follow_up_days, $follow_up_days) as window_days
    from fct_episodes as episodes
    left join stg_persons as persons on episodes.person_id = persons.person_id
    where episodes.cohort in ('care_managed', 'comparison')
        and episodes.age_at_start between $min_age and $max_age
        and (len($agency_models) = 0 or list_contains($agency_models, episodes.agency_model))
),
unplanned as (
    select base.episode_id, date_diff('day', base.start_date, events.event_date) as day
    from int_events as events
    inner join base on events.person_key = base.person_key
    where events.event_type = 'hospital_admission' and not events.is_planned
        and events.event_date >= base.start_date
        and date_diff('day', base.start_date, events.event_date) < base.window_days
),
after as (
    select episode_id, count(*) as unplanned_admissions, min(day) as first_unplanned_day
    from unplanned
    group by episode_id
),
repairs as (
    select
        base.episode_id,
        count(*) as ruptures_observed,
        sum(ruptures.days_without_help) as rupture_days_without_help
    from fct_ruptures as ruptures
    inner join base on ruptures.episode_id = base.episode_id
    where ruptures.rupture_type = 'service_interruption' and ruptures.period = 'after'
        and date_diff('day', base.start_date, ruptures.rupture_start) < base.window_days
        and date_diff('day', ruptures.rupture_start, base.follow_up_end) >= $repair_observation_days
    group by base.episode_id
)
select
    base.*,
    base.history_days_available as history_days,
    coalesce(after.unplanned_admissions, 0) as unplanned_admissions,
    after.first_unplanned_day,
    case when date_diff('day', base.start_date, base.death_date) < base.window_days
        then date_diff('day', base.start_date, base.death_date) end as death_day,
    coalesce(repairs.ruptures_observed, 0) as ruptures_observed,
    coalesce(repairs.rupture_days_without_help, 0) as rupture_days_without_help,
    base.window_days / 365.25 as person_years,
    load.zarit_baseline,
    load.zarit_change_12m,
    load.zarit_band_baseline,
    load.zarit_band_12m
from base
left join after on base.episode_id = after.episode_id
left join repairs on base.episode_id = repairs.episode_id
left join fct_carer_load as load on base.episode_id = load.episode_id
"""

ADMISSIONS_BY_MONTH = """
select
    episodes.episode_id,
    coalesce(events.diagnosis_group, 'unknown') as diagnosis_group,
    case
        when events.event_date >= episodes.start_date then 0
        else cast(ceil(date_diff('day', events.event_date, episodes.start_date) / $month_days) as integer)
    end as month_before,
    count(*) as admissions
from int_events as events
inner join _study_episodes as episodes on events.person_key = episodes.person_key
where events.event_type = 'hospital_admission' and not events.is_planned
    and date_diff('day', events.event_date, episodes.start_date) <= $history_days
    and date_diff('day', episodes.start_date, events.event_date) < episodes.window_days
group by all
"""
"""Unplanned admissions per episode, diagnosis group and month before the index date (0: after it, in the window)."""


PRIOR_USE = """
select
    episodes.episode_id,
    case events.event_type
        when 'hospital_admission' then 'unplanned_admissions'
        when 'emergency_visit' then 'emergency_visits'
        else 'falls'
    end as event,
    date_diff('day', events.event_date, episodes.start_date) as days_before
from int_events as events
inner join _prior_episodes as episodes on events.person_key = episodes.person_key
where (
        (events.event_type = 'hospital_admission' and not events.is_planned)
        or events.event_type in ('emergency_visit', 'fall')
    )
    and events.event_date < episodes.start_date
    and date_diff('day', events.event_date, episodes.start_date) <= $days
"""
"""Prior-use events of each episode's person at every agency (each event once), up to ``days`` before."""


def prior_use(con: duckdb.DuckDBPyConnection, episodes: pl.DataFrame) -> pl.DataFrame:
    """Every prior-use count of ``PRIOR_USE_COUNTS`` for ``episodes`` (episode_id, person_key, start_date)."""
    days = max(last for _, _, last in PRIOR_USE_COUNTS.values())
    con.register("_prior_episodes", episodes.select("episode_id", "person_key", "start_date"))
    try:
        events = warehouse.query(con, PRIOR_USE, {"days": days})
    finally:
        con.unregister("_prior_episodes")
    counts = events.group_by("episode_id").agg(
        ((pl.col("event") == event) & pl.col("days_before").is_between(first, last)).sum().alias(name)
        for name, (event, first, last) in PRIOR_USE_COUNTS.items()
    )
    return (
        episodes.select("episode_id")
        .join(counts, on="episode_id", how="left")
        .with_columns(pl.col(name).fill_null(0).cast(pl.Int64) for name in PRIOR_USE_COUNTS)
    )


def study_dataset(con: duckdb.DuckDBPyConnection, spec: StudySpec) -> pl.DataFrame:
    """One row per episode of the study population, with its covariates and outcomes."""
    base = warehouse.query(
        con,
        STUDY_BASE,
        {
            "follow_up_days": spec.follow_up_days,
            "min_age": spec.population.min_age,
            "max_age": spec.population.max_age,
            "agency_models": list(spec.population.agency_models or []),
            "repair_observation_days": REPAIR_OBSERVATION_DAYS,
        },
    )
    base = base.join(prior_use(con, base), on="episode_id", how="left")
    con.register("_study_base", base)
    try:
        expressions = ", ".join(f"{COVARIATES[c]} as covariate_{c}" for c in spec.covariates)
        return warehouse.query(con, f"select *, {expressions} from _study_base order by episode_id")
    finally:
        con.unregister("_study_base")


class Admissions:
    """Unplanned admissions of a study's episodes, in the episodes' order: after the index date within
    the window, and by month before it (``months`` columns), for all of them and per diagnosis group."""

    def __init__(self, episodes: pl.DataFrame, long: pl.DataFrame, months: int) -> None:
        self.months = months
        position = {e: i for i, e in enumerate(episodes["episode_id"].to_list())}
        self._rows = long["episode_id"].replace_strict(position, return_dtype=pl.Int64).to_numpy().astype(np.int64)
        self._groups = long["diagnosis_group"].cast(pl.String).to_numpy()
        self._month = long["month_before"].cast(pl.Int64).to_numpy().astype(np.int64)
        self._count = long["admissions"].to_numpy().astype(float)
        self._n = episodes.height

    def _select(self, key: str) -> np.ndarray:
        return np.ones(self._rows.shape[0], dtype=bool) if key == ALL_UNPLANNED else self._groups == key

    def after(self, key: str = ALL_UNPLANNED) -> np.ndarray:
        keep = self._select(key) & (self._month == 0)
        return np.bincount(self._rows[keep], self._count[keep], minlength=self._n)

    def before_by_month(self, key: str = ALL_UNPLANNED) -> np.ndarray:
        """A rows x months array: column m - 1 holds admissions in month m before the index date."""
        keep = self._select(key) & (self._month >= 1) & (self._month <= self.months)
        out = np.zeros((self._n, self.months))
        np.add.at(out, (self._rows[keep], self._month[keep] - 1), self._count[keep])
        return out


def admissions(con: duckdb.DuckDBPyConnection, episodes: pl.DataFrame, months: int) -> Admissions:
    """Unplanned admissions of ``episodes`` (with person_key, start_date, window_days) up to ``months`` before."""
    con.register("_study_episodes", episodes.select("episode_id", "person_key", "start_date", "window_days"))
    try:
        long = warehouse.query(
            con, ADMISSIONS_BY_MONTH, {"month_days": MONTH_DAYS, "history_days": round(months * MONTH_DAYS)}
        )
    finally:
        con.unregister("_study_episodes")
    return Admissions(episodes, long, months)


def outcome_key(outcome: str) -> str:
    """The ``Admissions`` key of an admission outcome: all unplanned, or a negative control's group."""
    return control_group(outcome) if outcome.startswith(ADMISSION_CONTROL_PREFIX) else ALL_UNPLANNED


def study_population(spec: StudySpec, data: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """The episodes the outcome can be measured on, with the history the design needs and complete
    covariates, and the attrition table (episodes left at each step)."""
    attrition = {"episodes_in_population": data.height}
    if "concurrent_care_management" in data.columns:
        # A comparison episode whose person is care-managed at the same time (at another agency, seen
        # through the linkage pseudonym) is not a comparison: it leaves the study.
        elsewhere = pl.col("concurrent_care_management").fill_null(False)
        concurrent = (pl.col("cohort") == spec.comparison_cohort) & elsewhere
        data = data.filter(~concurrent)
        attrition["without_comparison_episodes_care_managed_elsewhere"] = data.height
    if spec.outcome == "zarit_change_12m":
        data = data.filter(pl.col("zarit_change_12m").is_not_null())
        attrition["with_12_month_zarit"] = data.height
    elif spec.outcome == "rupture_repair_days":
        data = data.filter(pl.col("ruptures_observed") > 0)
        attrition["with_a_service_interruption_seen_to_repair"] = data.height
    if spec.history_months:
        needed = round(spec.history_months * MONTH_DAYS)
        data = data.filter(pl.col("history_days").fill_null(-1) >= needed)
        attrition[f"with_{spec.history_months}_months_of_history_in_the_data"] = data.height
    complete = data.drop_nulls([f"covariate_{c}" for c in spec.covariates])
    attrition["with_complete_covariates"] = complete.height
    return complete, attrition


__all__ = ["MEAN_OUTCOMES", "Admissions", "admissions", "study_dataset", "study_population"]
