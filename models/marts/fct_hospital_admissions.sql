-- One row per hospital admission that falls in an episode's before or after period, dated by
-- its admission day. Unplanned admissions are flagged as potentially avoidable (diagnosis in
-- data/reference/avoidable_conditions.csv) and as 30-day readmissions: an unplanned
-- admission within the readmission window after the discharge of the person's previous stay,
-- which is its index stay (each stay has one next admission, so at most one readmission is
-- counted per index stay; planned stays are never readmissions).
with admissions as (
    select * from stg_events
    where event_type = 'hospital_admission'
),

parameters as (
    select * from int_outcome_parameters
),

avoidable as (
    select diagnosis_group from ref_avoidable_conditions
),

periods as (
    select * from int_person_time
),

dimensions as (
    select * from int_episode_dimensions
),

sequenced as (
    select
        admissions.*,
        lag(admissions.end_date) over (
            partition by admissions.person_id order by admissions.event_date, admissions.event_id
        ) as previous_discharge,
        lag(admissions.event_id) over (
            partition by admissions.person_id order by admissions.event_date, admissions.event_id
        ) as previous_admission_id
    from admissions
),

flagged as (
    select
        sequenced.*,
        not sequenced.is_planned
        and sequenced.previous_discharge is not null
        and date_diff('day', sequenced.previous_discharge, sequenced.event_date)
        between 0 and parameters.readmission_window_days as is_readmission,
        not sequenced.is_planned and avoidable.diagnosis_group is not null as is_avoidable
    from sequenced
    cross join parameters
    left join avoidable on sequenced.diagnosis_group = avoidable.diagnosis_group
)

select
    flagged.event_id,
    periods.episode_id,
    periods.person_id,
    periods.agency_id,
    periods.cohort,
    periods.period,
    dimensions.agency_model,
    dimensions.departement,
    dimensions.gir_band,
    dimensions.age_band,
    cast(date_trunc('month', flagged.event_date) as date) as month_start,
    flagged.event_date as admission_date,
    flagged.end_date as discharge_date,
    flagged.is_planned,
    flagged.diagnosis_group,
    flagged.is_avoidable,
    flagged.is_readmission,
    case when flagged.is_readmission then flagged.previous_admission_id end as index_admission_id
from flagged
inner join periods
    on
        flagged.person_id = periods.person_id
        and flagged.event_date between periods.period_start and periods.period_end
inner join dimensions on periods.episode_id = dimensions.episode_id
