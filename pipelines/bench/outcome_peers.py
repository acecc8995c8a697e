"""One outcome computed four ways over the same Parquet files: bare DuckDB SQL, Polars, pandas.

The outcome is the funder overview's headline (``mart_hospitalisation_rates``): per cohort and
period (the 365 days before the index date, and from it to the end of follow-up), episodes,
person-days and unplanned admissions (an admission not marked planned). The definitions are
those of ``stg_events``, ``int_episode_dimensions``, ``int_person_time``,
``fct_hospital_admissions`` and ``mart_hospital_outcomes``, written as an analyst would in
each tool. Each function returns the same columns, sorted, so they can be compared exactly.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

COLUMNS = ["cohort", "period", "episodes", "person_days", "unplanned_admissions"]
EPISODE_COLUMNS = ["episode_id", "person_id", "cohort", "start_date", "end_date"]
EVENT_COLUMNS = ["person_id", "event_type", "event_date", "planned"]

DUCKDB_SQL = """
with episodes as (select {episodes} from read_parquet(?)),
events as (select {events} from read_parquet(?)),
cutoff as (
    select greatest(
        (select max(event_date) from events),
        (select max(coalesce(end_date, start_date)) from episodes)
    ) as data_cutoff
),
follow_up as (
    select e.*, least(coalesce(e.end_date, c.data_cutoff), c.data_cutoff) as follow_up_end
    from episodes as e cross join cutoff as c
    where e.start_date <= c.data_cutoff
),
periods as (
    select episode_id, person_id, cohort, 'before' as period,
        cast(start_date - interval '365' day as date) as period_start,
        cast(start_date - interval '1' day as date) as period_end, 365 as person_days
    from follow_up
    union all
    select episode_id, person_id, cohort, 'after', start_date, follow_up_end,
        date_diff('day', start_date, follow_up_end) + 1
    from follow_up where follow_up_end >= start_date
),
unplanned as (
    select person_id, event_date from events
    where event_type = 'hospital_admission' and not coalesce(planned, false)
),
admissions as (
    select p.cohort, p.period, count(*) as unplanned_admissions
    from unplanned as u
    inner join periods as p on u.person_id = p.person_id and u.event_date between p.period_start and p.period_end
    group by all
),
totals as (
    select cohort, period, count(*) as episodes, sum(person_days) as person_days from periods group by all
)
select t.cohort, t.period, t.episodes, t.person_days, coalesce(a.unplanned_admissions, 0) as unplanned_admissions
from totals as t left join admissions as a using (cohort, period)
order by cohort, period
""".format(episodes=", ".join(EPISODE_COLUMNS), events=", ".join(EVENT_COLUMNS))


def _normalise(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        pl.col("cohort").cast(pl.String),
        pl.col("period").cast(pl.String),
        *(pl.col(c).cast(pl.Int64) for c in COLUMNS[2:]),
    ).sort("cohort", "period")


def with_duckdb(episodes: Path, events: Path) -> pl.DataFrame:
    con = duckdb.connect()
    try:
        return _normalise(con.sql(DUCKDB_SQL, params=[str(episodes), str(events)]).pl())
    finally:
        con.close()


def with_polars(episodes: Path, events: Path) -> pl.DataFrame:
    ep = pl.scan_parquet(episodes).select(EPISODE_COLUMNS)
    ev = pl.scan_parquet(events).select(EVENT_COLUMNS)
    cutoff = pl.concat(
        [
            ev.select(pl.col("event_date").max().alias("d")),
            ep.select(pl.coalesce("end_date", "start_date").max().alias("d")),
        ]
    ).select(pl.col("d").max())
    follow_up = (
        ep.join(cutoff, how="cross")
        .filter(pl.col("start_date") <= pl.col("d"))
        .with_columns(pl.min_horizontal(pl.coalesce("end_date", "d"), "d").alias("follow_up_end"))
    )
    keys = ["episode_id", "person_id", "cohort"]
    periods = pl.concat(
        [
            follow_up.select(
                *keys,
                pl.lit("before").alias("period"),
                (pl.col("start_date") - pl.duration(days=365)).alias("period_start"),
                (pl.col("start_date") - pl.duration(days=1)).alias("period_end"),
                pl.lit(365, dtype=pl.Int64).alias("person_days"),
            ),
            follow_up.filter(pl.col("follow_up_end") >= pl.col("start_date")).select(
                *keys,
                pl.lit("after").alias("period"),
                pl.col("start_date").alias("period_start"),
                pl.col("follow_up_end").alias("period_end"),
                ((pl.col("follow_up_end") - pl.col("start_date")).dt.total_days() + 1).alias("person_days"),
            ),
        ]
    )
    unplanned = ev.filter((pl.col("event_type") == "hospital_admission") & ~pl.col("planned").fill_null(False)).select(
        "person_id", "event_date"
    )
    admissions = (
        unplanned.join(periods.select("person_id", "cohort", "period", "period_start", "period_end"), on="person_id")
        .filter(pl.col("event_date").is_between(pl.col("period_start"), pl.col("period_end")))
        .group_by("cohort", "period")
        .agg(pl.len().alias("unplanned_admissions"))
    )
    totals = periods.group_by("cohort", "period").agg(
        pl.len().alias("episodes"), pl.col("person_days").sum().alias("person_days")
    )
    result = totals.join(admissions, on=["cohort", "period"], how="left").with_columns(
        pl.col("unplanned_admissions").fill_null(0)
    )
    return _normalise(result.collect())


def with_pandas(episodes: Path, events: Path) -> pl.DataFrame:
    import pandas as pd

    ep = pd.read_parquet(episodes, columns=EPISODE_COLUMNS)
    ev = pd.read_parquet(events, columns=EVENT_COLUMNS)
    for frame, columns in ((ep, ["start_date", "end_date"]), (ev, ["event_date"])):
        for column in columns:
            frame[column] = pd.to_datetime(frame[column])
    cutoff = max(ev["event_date"].max(), ep["end_date"].fillna(ep["start_date"]).max())
    ep = ep[ep["start_date"] <= cutoff].copy()
    ep["follow_up_end"] = ep["end_date"].fillna(cutoff).clip(upper=cutoff)
    keys = ["episode_id", "person_id", "cohort"]
    before = ep[keys].assign(
        period="before",
        period_start=ep["start_date"] - pd.Timedelta(days=365),
        period_end=ep["start_date"] - pd.Timedelta(days=1),
        person_days=365,
    )
    followed = ep[ep["follow_up_end"] >= ep["start_date"]]
    after = followed[keys].assign(
        period="after",
        period_start=followed["start_date"],
        period_end=followed["follow_up_end"],
        person_days=(followed["follow_up_end"] - followed["start_date"]).dt.days + 1,
    )
    periods = pd.concat([before, after], ignore_index=True)
    unplanned = ev[(ev["event_type"] == "hospital_admission") & ~ev["planned"].fillna(False).astype(bool)]
    joined = unplanned[["person_id", "event_date"]].merge(
        periods[["person_id", "cohort", "period", "period_start", "period_end"]], on="person_id"
    )
    inside = joined[(joined["event_date"] >= joined["period_start"]) & (joined["event_date"] <= joined["period_end"])]
    admissions = inside.groupby(["cohort", "period"]).size().rename("unplanned_admissions")
    totals = periods.groupby(["cohort", "period"]).agg(
        episodes=("episode_id", "size"), person_days=("person_days", "sum")
    )
    result = totals.join(admissions).fillna({"unplanned_admissions": 0}).reset_index()
    return _normalise(pl.from_pandas(result))


PEERS = {"duckdb": with_duckdb, "polars": with_polars, "pandas": with_pandas}


def pipeline_result(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The same figures as the pipeline's models computed them."""
    frame = con.sql(
        "select cohort, period, episodes, person_days, unplanned_admissions from mart_hospitalisation_rates"
    ).pl()
    return _normalise(frame)
