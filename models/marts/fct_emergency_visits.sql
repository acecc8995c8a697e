-- One row per emergency visit in an episode's before or after period, flagged when an
-- admission follows within ed_admission_days (then it is counted with the admission).
with visits as (
    select * from stg_events
    where event_type = 'emergency_visit'
),

admissions as (
    select
        person_id,
        event_date
    from stg_events
    where event_type = 'hospital_admission'
),

parameters as (
    select * from int_outcome_parameters
),

periods as (
    select * from int_person_time
),

dimensions as (
    select * from int_episode_dimensions
),

matched as (
    select
        visits.event_id,
        max(case when admissions.person_id is not null then 1 else 0 end) as admitted
    from visits
    cross join parameters
    left join admissions
        on
            visits.person_id = admissions.person_id
            and date_diff('day', visits.event_date, admissions.event_date) between 0 and parameters.ed_admission_days
    group by visits.event_id
)

select
    visits.event_id,
    periods.episode_id,
    periods.person_id,
    periods.agency_id,
    periods.cohort,
    periods.period,
    dimensions.agency_model,
    dimensions.departement,
    dimensions.gir_band,
    dimensions.age_band,
    cast(date_trunc('month', visits.event_date) as date) as month_start,
    visits.event_date as visit_date,
    matched.admitted = 1 as followed_by_admission
from visits
inner join matched on visits.event_id = matched.event_id
inner join periods
    on
        visits.person_id = periods.person_id
        and visits.event_date between periods.period_start and periods.period_end
inner join dimensions on periods.episode_id = dimensions.episode_id
