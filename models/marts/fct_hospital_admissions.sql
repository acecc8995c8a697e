-- One row per hospital admission that falls in an episode's before or after period,
-- dated by its admission day.
with admissions as (
    select * from stg_events
    where event_type = 'hospital_admission'
),

periods as (
    select * from int_person_time
)

select
    admissions.event_id,
    periods.episode_id,
    periods.person_id,
    periods.agency_id,
    periods.cohort,
    periods.period,
    admissions.event_date as admission_date,
    admissions.end_date as discharge_date,
    admissions.is_planned,
    admissions.diagnosis_group
from admissions
inner join periods
    on
        admissions.person_id = periods.person_id
        and admissions.event_date between periods.period_start and periods.period_end
