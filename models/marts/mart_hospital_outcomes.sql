-- Hospital outcomes per 1,000 person-years, by breakdown (dimension, dimension_value),
-- cohort and period: unplanned admissions (95% Byar interval), potentially avoidable
-- admissions, 30-day readmissions, emergency visits without admission; planned stays counted
-- apart. Descriptive: not adjusted for case mix. Each admission, visit and day of a person is
-- counted once, under the episode that owns it (int_attributed_time), however many episodes,
-- agencies or copies the person has; persons are counted across the federation (person_key).
with admissions as (
    select
        episode_id,
        period,
        sum(case when is_planned then 0 else 1 end) as unplanned_admissions,
        sum(case when is_planned then 1 else 0 end) as planned_admissions,
        sum(case when is_avoidable then 1 else 0 end) as avoidable_admissions,
        sum(case when is_readmission then 1 else 0 end) as readmissions_30d
    from fct_hospital_admissions
    where is_attributed
    group by episode_id, period
),

visits as (
    select
        episode_id,
        period,
        sum(case when followed_by_admission then 0 else 1 end) as emergency_visits_without_admission
    from fct_emergency_visits
    where is_attributed
    group by episode_id, period
),

person_time as (
    select
        episode_id,
        person_key,
        period,
        sum(person_days) as person_days
    from int_attributed_time
    group by episode_id, person_key, period
),

per_episode as (
    select
        person_time.episode_id,
        person_time.person_key,
        person_time.period,
        person_time.person_days,
        coalesce(admissions.unplanned_admissions, 0) as unplanned_admissions,
        coalesce(admissions.planned_admissions, 0) as planned_admissions,
        coalesce(admissions.avoidable_admissions, 0) as avoidable_admissions,
        coalesce(admissions.readmissions_30d, 0) as readmissions_30d,
        coalesce(visits.emergency_visits_without_admission, 0) as emergency_visits_without_admission
    from person_time
    left join admissions
        on person_time.episode_id = admissions.episode_id and person_time.period = admissions.period
    left join visits on person_time.episode_id = visits.episode_id and person_time.period = visits.period
),

totals as (
    select
        pairs.dimension,
        pairs.dimension_value,
        pairs.cohort,
        per_episode.period,
        count(*) as episodes,
        count(distinct per_episode.person_key) as persons,
        cast(sum(per_episode.person_days) as bigint) as person_days,
        sum(per_episode.person_days) / 365.25 as person_years,
        cast(sum(per_episode.unplanned_admissions) as bigint) as unplanned_admissions,
        cast(sum(per_episode.planned_admissions) as bigint) as planned_admissions,
        cast(sum(per_episode.avoidable_admissions) as bigint) as avoidable_admissions,
        cast(sum(per_episode.readmissions_30d) as bigint) as readmissions_30d,
        cast(sum(per_episode.emergency_visits_without_admission) as bigint) as emergency_visits_without_admission
    from per_episode
    inner join int_episode_dimension_pairs as pairs on per_episode.episode_id = pairs.episode_id
    group by pairs.dimension, pairs.dimension_value, pairs.cohort, per_episode.period
)

select
    *,
    1000.0 * unplanned_admissions / person_years as unplanned_rate_per_1000py,
    case
        when unplanned_admissions = 0 then 0.0
        else 1000.0 * unplanned_admissions
            * power(1 - 1 / (9.0 * unplanned_admissions) - 1.959964 / (3 * sqrt(unplanned_admissions)), 3)
            / person_years
    end as unplanned_rate_ci_low,
    1000.0 * (unplanned_admissions + 1)
    * power(1 - 1 / (9.0 * (unplanned_admissions + 1)) + 1.959964 / (3 * sqrt(unplanned_admissions + 1)), 3)
    / person_years as unplanned_rate_ci_high,
    1000.0 * avoidable_admissions / person_years as avoidable_rate_per_1000py,
    1000.0 * readmissions_30d / person_years as readmission_rate_per_1000py,
    1000.0 * emergency_visits_without_admission / person_years as emergency_visit_rate_per_1000py
from totals
where person_years > 0
