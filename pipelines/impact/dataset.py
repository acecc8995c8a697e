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

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipelines import warehouse
from pipelines.engines import Engine, as_engine
from pipelines.impact.spec import (
    ADMISSION_CONTROL_PREFIX,
    COUNT_TYPE,
    COVARIATE_TYPES,
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

QUERIES = Path(__file__).with_name("queries")
"""The study queries: SQL files in DuckDB's dialect, run on the configured engine (``pipelines.engines``)."""


def study_query(name: str) -> str:
    return (QUERIES / f"{name}.sql").read_text(encoding="utf-8")


STUDY_BASE = study_query("study_base")

ADMISSIONS_BY_MONTH = study_query("admissions_by_month")
EVENT_STUDY_AFTER = study_query("event_study_after")


def prior_use_counts() -> str:
    """Every prior-use count of ``PRIOR_USE_COUNTS`` as one aggregate each over the prior-use events (names and
    day limits from the fixed table in ``spec.py``): the SQL model ``fct_prior_use`` must hold each as written."""
    return ",\n".join(
        f"count(*) filter (where event = '{event}' and days_before between {first} and {last}) as {name}"
        for name, (event, first, last) in PRIOR_USE_COUNTS.items()
    )


DATASET_COLUMNS = (
    "episode_id", "person_key", "agency_id", "agency_model", "cohort", "start_date", "follow_up_days", "age_band",
    "gir_band", "concurrent_care_management", "window_days", "history_days", "unplanned_admissions",
    "first_unplanned_day", "death_day", "ruptures_observed", "rupture_days_without_help", "person_years",
    "zarit_baseline", "zarit_change_12m", "zarit_band_baseline", "zarit_band_12m",
)  # fmt: skip
"""The study base's columns a study's dataset hands back (besides its prior-use counts and covariates): those the
studies read. The base's others (conditions, entry situation, age, living alone, end of follow-up, death date)
only go into covariates and outcomes in the query: a million episodes' copies of them came back unread."""


def _covariate(name: str) -> str:
    """A covariate's SQL expression, an integer one cast to its narrow type (``COVARIATE_TYPES``)."""
    expression = COVARIATES[name]
    return f"cast({expression} as {COVARIATE_TYPES[name]})" if name in COVARIATE_TYPES else expression


def study_dataset_sql(spec: StudySpec) -> str:
    """The study dataset as one query: the study base, each episode's prior-use counts (the model
    ``fct_prior_use``, counted once for every study) and the study's covariates. One query, so that the engine
    alone holds the intermediate rows and only the result comes back: built in three round trips through Python
    frames, the studies stage peaked at 3.8 GiB at 1,000,000 persons, 3.1 GiB of it here. The study base is named
    once: a named set of rows read twice is stored whole by the engine first (``docs/benchmarks-notes.md``).
    The result holds the columns the studies read (``DATASET_COLUMNS``) and its counts and flags in 8 or 16 bits
    (``COVARIATE_TYPES``): the same values in less than half the memory."""
    counts = ", ".join(f"cast(coalesce(prior_use.{name}, 0) as {COUNT_TYPE}) as {name}" for name in PRIOR_USE_COUNTS)
    covariates = ", ".join(f"{_covariate(c)} as covariate_{c}" for c in spec.covariates)
    columns = ", ".join(DATASET_COLUMNS)
    return f"""
with study_base as (
{STUDY_BASE}
),
dataset as (
    select study_base.*, {counts}
    from study_base
    left join fct_prior_use as prior_use on study_base.episode_id = prior_use.episode_id
)
select {columns}, {", ".join(PRIOR_USE_COUNTS)}{", " + covariates if covariates else ""} from dataset
order by episode_id
"""


def study_dataset(con: Engine | Any, spec: StudySpec) -> pl.DataFrame:
    """One row per episode of the study population, with its covariates and outcomes, in episode order (``con``:
    the engine, or a DuckDB connection). Sorted by the engine, under its memory limit (it spills), rather than
    here: a sorted copy of the frame made here came while the engine's freed memory was still resident, 300 MB
    more at the query's peak at 1,000,000 persons (1.87 GiB instead of 1.37). A result that comes back out of
    order all the same is sorted here.

    On DuckDB each join builds on the side the SQL puts on its right (``warehouse.join_sides_as_written``): left
    to choose, DuckDB built the prior-use join on the whole study base rather than on ``fct_prior_use``, and the
    query failed at 1,000,000 persons under the studies' 953 MiB (it passes so in 1.8 s)."""
    engine = as_engine(con)
    sides = warehouse.join_sides_as_written(engine.working) if engine.name == "duckdb" else contextlib.nullcontext()
    with sides:
        data = engine.query(study_dataset_sql(spec), study_dataset_parameters(spec))
    return data if data["episode_id"].is_sorted() else data.sort("episode_id")


def study_dataset_parameters(spec: StudySpec) -> dict[str, Any]:
    """The values ``study_dataset_sql`` binds by name."""
    return {
        "follow_up_days": spec.follow_up_days,
        "min_age": spec.population.min_age,
        "max_age": spec.population.max_age,
        "agency_models": list(spec.population.agency_models or []),
        "repair_observation_days": REPAIR_OBSERVATION_DAYS,
    }


class Admissions:
    """Unplanned admissions of a study's episodes, in the episodes' order: after the index date within
    the window, and by month before it (``months`` columns), for all of them and per diagnosis group."""

    def __init__(self, episodes: pl.DataFrame, long: pl.DataFrame, months: int) -> None:
        self.months = months
        # Each row's episode as its position, and its diagnosis group as a small code: a Python dict of every
        # episode id and an array of Python strings (one per row) held 100 MB and more at a million episodes.
        positions = pl.int_range(episodes.height, dtype=pl.Int64, eager=True)
        self._rows = long["episode_id"].replace_strict(episodes["episode_id"], positions).to_numpy().astype(np.int64)
        groups = long["diagnosis_group"].cast(pl.String)
        self._group_codes = {name: code for code, name in enumerate(groups.unique().sort().to_list())}
        self._groups = groups.replace_strict(self._group_codes, return_dtype=pl.Int32).to_numpy()
        self._month = long["month_before"].cast(pl.Int64).to_numpy().astype(np.int64)
        self._count = long["admissions"].to_numpy().astype(float)
        self._n = episodes.height

    def _select(self, key: str) -> np.ndarray:
        if key == ALL_UNPLANNED:
            return np.ones(self._rows.shape[0], dtype=bool)
        code = self._group_codes.get(key)
        return np.zeros(self._rows.shape[0], dtype=bool) if code is None else self._groups == code

    def after(self, key: str = ALL_UNPLANNED) -> np.ndarray:
        keep = self._select(key) & (self._month == 0)
        return np.bincount(self._rows[keep], self._count[keep], minlength=self._n)

    def before_by_month(self, key: str = ALL_UNPLANNED) -> np.ndarray:
        """A rows x months array: column m - 1 holds admissions in month m before the index date. Counts, as 32-bit
        integers: the same numbers as floats in half the memory (the DiD's 24 months at a million rows, 190 MB as
        floats, held through every fit of the design); its readers sum them into floats (``did.window_counts``)."""
        keep = self._select(key) & (self._month >= 1) & (self._month <= self.months)
        out = np.zeros((self._n, self.months), dtype=np.int32)
        np.add.at(out, (self._rows[keep], self._month[keep] - 1), self._count[keep].astype(np.int32))
        return out


def admissions(con: Engine | Any, episodes: pl.DataFrame, months: int) -> Admissions:
    """Unplanned admissions of ``episodes`` (with person_key, start_date, window_days) up to ``months`` before."""
    engine = as_engine(con)
    with engine.registered("_study_episodes", episodes.select("episode_id", "person_key", "start_date", "window_days")):
        long = engine.query(ADMISSIONS_BY_MONTH, {"month_days": MONTH_DAYS, "history_days": round(months * MONTH_DAYS)})
    return Admissions(episodes, long, months)


def admissions_after_by_month(con: Engine | Any, episodes: pl.DataFrame) -> pl.DataFrame:
    """Each unplanned admission of ``episodes`` (episode_id, person_key, start_date) in the 12 months after
    the index date, with its month relative to it (``relative_month``, 0 to 11)."""
    engine = as_engine(con)
    with engine.registered("_event_episodes", episodes.select("episode_id", "person_key", "start_date")):
        return engine.query(EVENT_STUDY_AFTER, {"month_days": MONTH_DAYS})


def outcome_key(outcome: str) -> str:
    """The ``Admissions`` key of an admission outcome: all unplanned, or a negative control's group."""
    return control_group(outcome) if outcome.startswith(ADMISSION_CONTROL_PREFIX) else ALL_UNPLANNED


def study_population(spec: StudySpec, data: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """The episodes the outcome can be measured on, with the history the design needs and complete
    covariates, and the attrition table (episodes left at each step).

    Each step is a condition on the dataset's rows; the attrition table counts the rows meeting every condition
    so far, and the rows are filtered once, at the end: one copy of the dataset, not one per step."""
    steps: list[tuple[str, pl.Expr]] = []
    if "concurrent_care_management" in data.columns:
        # A comparison episode whose person is care-managed at the same time (at another agency, seen
        # through the linkage pseudonym) is not a comparison: it leaves the study.
        elsewhere = pl.col("concurrent_care_management").fill_null(False)
        concurrent = (pl.col("cohort") == spec.comparison_cohort) & elsewhere
        steps.append(("without_comparison_episodes_care_managed_elsewhere", ~concurrent))
    if spec.outcome == "zarit_change_12m":
        steps.append(("with_12_month_zarit", pl.col("zarit_change_12m").is_not_null()))
    elif spec.outcome == "rupture_repair_days":
        steps.append(("with_a_service_interruption_seen_to_repair", pl.col("ruptures_observed") > 0))
    if spec.history_months:
        needed = round(spec.history_months * MONTH_DAYS)
        steps.append(
            (
                f"with_{spec.history_months}_months_of_history_in_the_data",
                pl.col("history_days").fill_null(-1) >= needed,
            )
        )
    complete = [pl.col(f"covariate_{c}").is_not_null() for c in spec.covariates]
    steps.append(("with_complete_covariates", pl.all_horizontal(complete) if complete else pl.lit(True)))
    kept = pl.lit(True)
    counts = []
    for name, condition in steps:
        # A condition that is null keeps no row, as ``filter`` does.
        kept = kept & condition.fill_null(False)
        counts.append(kept.sum().alias(name))
    attrition = {"episodes_in_population": data.height, **data.select(counts).row(0, named=True)}
    return data.filter(kept), attrition


__all__ = ["MEAN_OUTCOMES", "Admissions", "admissions", "study_dataset", "study_population"]
