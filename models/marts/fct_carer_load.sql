-- Carer load per episode: the Zarit score (22-item form, 0-88) at baseline (the assessment
-- closest to the start, from 30 days before to 60 days after it) and at 6 and 12 months (the assessment
-- closest to 182 or 365 days after the start, within assessment_window_days), its band, the
-- change from baseline, carer hours per week, and whether a carer on leave or out of work
-- at baseline is back in work at the last of those assessments. An assessment belongs to the
-- episode it names (episode_id); one that names none is used by every episode of its person at
-- that agency whose window it falls in, so two overlapping episodes may share it: is_attributed
-- marks the one episode (care-managed first, then the earliest start) that counts a baseline
-- assessment in totals.
with dimensions as not materialized (
    select * from int_episode_dimensions
),

parameters as (
    select * from int_outcome_parameters
),

carer_measures as not materialized (
    select
        assessment_id,
        person_id,
        episode_id as named_episode_id,
        assessment_date,
        zarit_form,
        zarit_score,
        carer_hours_per_week,
        carer_employment
    from stg_assessments
    where
        zarit_score is not null
        or carer_hours_per_week is not null
        or carer_employment is not null
),

attached as (
    select
        dimensions.episode_id,
        carer_measures.*
    from carer_measures
    inner join dimensions on carer_measures.named_episode_id = dimensions.episode_id
    union all
    select
        dimensions.episode_id,
        carer_measures.*
    from carer_measures
    inner join dimensions on carer_measures.person_id = dimensions.person_id
    where carer_measures.named_episode_id is null
),

assessments as (
    select
        attached.episode_id,
        attached.assessment_id,
        attached.assessment_date,
        date_diff('day', dimensions.start_date, attached.assessment_date) as offset_days,
        case when coalesce(attached.zarit_form, 'zbi22') = 'zbi22' then attached.zarit_score end as zarit,
        attached.carer_hours_per_week,
        attached.carer_employment
    from attached
    inner join dimensions on attached.episode_id = dimensions.episode_id
    where
        attached.assessment_date
        between cast(dimensions.start_date - interval '30' day as date) and dimensions.follow_up_end
),

timed as (
    select
        assessments.*,
        case
            when assessments.offset_days between -30 and 60 then 0
            when abs(assessments.offset_days - 182) <= parameters.assessment_window_days then 6
            when abs(assessments.offset_days - 365) <= parameters.assessment_window_days then 12
        end as time_point
    from assessments
    cross join parameters
),

ranked as (
    select
        timed.*,
        row_number() over (
            partition by timed.episode_id, timed.time_point
            order by
                abs(timed.offset_days - case timed.time_point when 0 then 0 when 6 then 182 else 365 end),
                timed.assessment_date
        ) as rank_in_point
    from timed
),

points as (
    select
        episode_id,
        max(case when time_point = 0 then assessment_id end) as baseline_assessment_id,
        max(case when time_point = 0 then zarit end) as zarit_baseline,
        max(case when time_point = 6 then zarit end) as zarit_6m,
        max(case when time_point = 12 then zarit end) as zarit_12m,
        max(case when time_point = 0 then carer_hours_per_week end) as carer_hours_baseline,
        max(case when time_point = 6 then carer_hours_per_week end) as carer_hours_6m,
        max(case when time_point = 12 then carer_hours_per_week end) as carer_hours_12m,
        max(case when time_point = 0 then carer_employment end) as employment_baseline,
        max(case when time_point = 6 then carer_employment end) as employment_6m,
        max(case when time_point = 12 then carer_employment end) as employment_12m
    from ranked
    where time_point is not null and rank_in_point = 1
    group by episode_id
),

banded as (
    select
        points.*,
        coalesce(points.employment_12m, points.employment_6m) as employment_last,
        row_number() over (
            partition by coalesce(points.baseline_assessment_id, points.episode_id)
            order by
                case when dimensions.cohort = 'care_managed' then 0 else 1 end,
                dimensions.start_date,
                dimensions.episode_id
        ) = 1 as is_attributed
    from points
    inner join dimensions on points.episode_id = dimensions.episode_id
)

select
    dimensions.episode_id,
    dimensions.person_id,
    dimensions.person_key,
    dimensions.agency_id,
    dimensions.agency_model,
    dimensions.departement,
    dimensions.gir_band,
    dimensions.age_band,
    dimensions.cohort,
    banded.baseline_assessment_id,
    banded.zarit_baseline,
    banded.zarit_6m,
    banded.zarit_12m,
    banded.zarit_6m - banded.zarit_baseline as zarit_change_6m,
    banded.zarit_12m - banded.zarit_baseline as zarit_change_12m,
    case
        when banded.zarit_baseline is null then null
        when banded.zarit_baseline <= 20 then '0-20'
        when banded.zarit_baseline <= 40 then '21-40'
        when banded.zarit_baseline <= 60 then '41-60'
        else '61-88'
    end as zarit_band_baseline,
    case
        when banded.zarit_12m is null then null
        when banded.zarit_12m <= 20 then '0-20'
        when banded.zarit_12m <= 40 then '21-40'
        when banded.zarit_12m <= 60 then '41-60'
        else '61-88'
    end as zarit_band_12m,
    banded.carer_hours_baseline,
    banded.carer_hours_6m,
    banded.carer_hours_12m,
    banded.employment_baseline,
    banded.employment_last,
    banded.employment_baseline in ('unpaid_leave', 'stopped_work') as carer_out_of_work_at_baseline,
    banded.employment_baseline in ('unpaid_leave', 'stopped_work')
    and banded.employment_last in ('full_time', 'part_time') as carer_back_in_work,
    banded.is_attributed
from banded
inner join dimensions on banded.episode_id = dimensions.episode_id
