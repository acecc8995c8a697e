-- The study base: one row per episode of the population with its outcomes after the index date.
-- Parameters: $follow_up_days, $min_age, $max_age, $agency_models (a list; empty: all), $repair_observation_days.
-- base is read three times: stored once (materialized), not joined again at each use (at 1,000,000 persons,
-- 5.7-6.0 s for the headline study's dataset against 6.9-7.1 s read again; docs/architecture.md, conventions).
with base as materialized (
    -- The episode's columns the studies read (population, covariates, outcomes, windows, subgroups, clusters),
    -- not episodes.*: every column more is a million values more in each copy of a study's frame.
    select
        episodes.episode_id,
        episodes.person_key,
        episodes.agency_id,
        episodes.agency_model,
        episodes.cohort,
        episodes.start_date,
        episodes.follow_up_end,
        episodes.follow_up_days,
        episodes.death_date,
        episodes.age_at_start,
        episodes.age_band,
        episodes.gir_band,
        episodes.lives_alone,
        episodes.entry_situation,
        episodes.concurrent_care_management,
        episodes.history_days_available,
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
