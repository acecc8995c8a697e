-- One row per emergency visit and episode period it falls in (history, before, after, as in
-- fct_hospital_admissions), flagged when an admission of the same person follows within
-- ed_admission_days (then it is counted with the admission). Each visit is once in int_events;
-- is_attributed marks the one episode-period that counts it in totals.
with visits as not materialized (
    select * from int_events
    where event_type = 'emergency_visit'
),

admissions as (
    select
        person_key,
        event_date
    from int_events
    where event_type = 'hospital_admission'
),

parameters as not materialized (
    select * from int_outcome_parameters
),

dimensions as not materialized (
    select * from int_episode_dimensions
),

matched as (
    select
        visits.event_id,
        max(case when admissions.person_key is not null then 1 else 0 end) as admitted
    from visits
    cross join parameters
    left join admissions
        on
            visits.person_key = admissions.person_key
            and date_diff('day', visits.event_date, admissions.event_date) between 0 and parameters.ed_admission_days
    group by visits.event_id
),

placed as (
    select
        visits.event_id,
        periods.episode_id,
        periods.period
    from visits
    inner join int_person_time as periods
        on
            visits.person_key = periods.person_key
            and visits.event_date between periods.period_start and periods.period_end
    union all
    select
        visits.event_id,
        dimensions.episode_id,
        'history' as period
    from visits
    cross join parameters
    inner join dimensions on visits.person_key = dimensions.person_key
    where date_diff('day', visits.event_date, dimensions.start_date) between 366 and parameters.history_days
)

select
    visits.event_id,
    placed.episode_id,
    dimensions.person_id,
    dimensions.person_key,
    dimensions.agency_id,
    dimensions.cohort,
    placed.period,
    dimensions.agency_model,
    dimensions.departement,
    dimensions.gir_band,
    dimensions.age_band,
    cast(date_trunc('month', visits.event_date) as date) as month_start,
    visits.event_date as visit_date,
    date_diff('day', dimensions.start_date, visits.event_date) as days_from_index,
    matched.admitted = 1 as followed_by_admission,
    segments.episode_id is not null as is_attributed
from placed
inner join visits on placed.event_id = visits.event_id
inner join matched on placed.event_id = matched.event_id
inner join dimensions on placed.episode_id = dimensions.episode_id
left join int_attributed_time as segments
    on
        placed.episode_id = segments.episode_id
        and placed.period = segments.period
        and visits.event_date between segments.segment_start and segments.segment_end
