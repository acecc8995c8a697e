-- One row per hospital admission and episode period it falls in, dated by its admission day:
-- before and after (int_person_time), and history, from history_days (730) to 366 days before
-- the index date, for designs that look further back. Each episode sees every admission of its
-- person (person_key: whichever agency sent it, each admission once, int_events), so a person's
-- overlapping episodes see the same admission; is_attributed marks the one episode-period that
-- counts it in federation totals and breakdowns (int_attributed_time; never in history).
-- Unplanned admissions are flagged as potentially avoidable (data/reference/avoidable_conditions.csv),
-- as negative controls (data/reference/negative_control_conditions.csv: conditions care management
-- cannot influence) and as 30-day readmissions: an unplanned admission within the readmission window
-- after the discharge of the person's previous stay, which is its index stay (each stay has one next
-- admission, so at most one readmission is counted per index stay; planned stays are never readmissions).
with admissions as (
    select * from int_events
    where event_type = 'hospital_admission'
),

parameters as not materialized (
    select * from int_outcome_parameters
),

avoidable as (
    select diagnosis_group from ref_avoidable_conditions
),

negative_controls as (
    select diagnosis_group from ref_negative_control_conditions
),

dimensions as not materialized (
    select * from int_episode_dimensions
),

sequenced as (
    select
        admissions.*,
        lag(admissions.end_date) over (
            partition by admissions.person_key order by admissions.event_date, admissions.event_id
        ) as previous_discharge,
        lag(admissions.event_id) over (
            partition by admissions.person_key order by admissions.event_date, admissions.event_id
        ) as previous_admission_id
    from admissions
),

flagged as materialized (
    select
        sequenced.*,
        not sequenced.is_planned
        and sequenced.previous_discharge is not null
        and date_diff('day', sequenced.previous_discharge, sequenced.event_date)
        between 0 and parameters.readmission_window_days as is_readmission,
        not sequenced.is_planned and avoidable.diagnosis_group is not null as is_avoidable,
        not sequenced.is_planned and negative_controls.diagnosis_group is not null as is_negative_control
    from sequenced
    cross join parameters
    left join avoidable on sequenced.diagnosis_group = avoidable.diagnosis_group
    left join negative_controls on sequenced.diagnosis_group = negative_controls.diagnosis_group
),

placed as (
    select
        flagged.event_id,
        periods.episode_id,
        periods.period
    from flagged
    inner join int_person_time as periods
        on
            flagged.person_key = periods.person_key
            and flagged.event_date between periods.period_start and periods.period_end
    union all
    select
        flagged.event_id,
        dimensions.episode_id,
        'history' as period
    from flagged
    cross join parameters
    inner join dimensions on flagged.person_key = dimensions.person_key
    where date_diff('day', flagged.event_date, dimensions.start_date) between 366 and parameters.history_days
)

select
    flagged.event_id,
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
    cast(date_trunc('month', flagged.event_date) as date) as month_start,
    flagged.event_date as admission_date,
    flagged.end_date as discharge_date,
    date_diff('day', dimensions.start_date, flagged.event_date) as days_from_index,
    flagged.is_planned,
    flagged.diagnosis_group,
    flagged.is_avoidable,
    flagged.is_negative_control,
    flagged.is_readmission,
    case when flagged.is_readmission then flagged.previous_admission_id end as index_admission_id,
    segments.episode_id is not null as is_attributed
from placed
inner join flagged on placed.event_id = flagged.event_id
inner join dimensions on placed.episode_id = dimensions.episode_id
left join int_attributed_time as segments
    on
        placed.episode_id = segments.episode_id
        and placed.period = segments.period
        and flagged.event_date between segments.segment_start and segments.segment_end
