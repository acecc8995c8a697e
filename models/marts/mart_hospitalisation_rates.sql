-- Unplanned hospitalisation rates per 1,000 person-years by cohort and period, with a 95%
-- interval from Byar's approximation to the exact Poisson interval (portable SQL, accurate
-- to a few percent even for small counts). Descriptive: not adjusted for case mix.
with person_time as (
    select
        cohort,
        period,
        count(distinct episode_id) as episodes,
        count(distinct person_id) as persons,
        cast(sum(person_days) as bigint) as person_days
    from int_person_time
    group by cohort, period
),

admissions as (
    select
        cohort,
        period,
        cast(sum(case when is_planned then 0 else 1 end) as bigint) as unplanned_admissions,
        cast(sum(case when is_planned then 1 else 0 end) as bigint) as planned_admissions
    from fct_hospital_admissions
    group by cohort, period
),

counts as (
    select
        person_time.cohort,
        person_time.period,
        person_time.episodes,
        person_time.persons,
        person_time.person_days,
        person_time.person_days / 365.25 as person_years,
        coalesce(admissions.unplanned_admissions, 0) as unplanned_admissions,
        coalesce(admissions.planned_admissions, 0) as planned_admissions
    from person_time
    left join admissions
        on person_time.cohort = admissions.cohort and person_time.period = admissions.period
)

select
    cohort,
    period,
    episodes,
    persons,
    person_days,
    person_years,
    unplanned_admissions,
    planned_admissions,
    1000.0 * unplanned_admissions / person_years as unplanned_rate_per_1000py,
    case
        when unplanned_admissions = 0 then 0.0
        else 1000.0 * unplanned_admissions
            * power(1 - 1 / (9.0 * unplanned_admissions) - 1.959964 / (3 * sqrt(unplanned_admissions)), 3)
            / person_years
    end as unplanned_rate_ci_low,
    1000.0 * (unplanned_admissions + 1)
    * power(1 - 1 / (9.0 * (unplanned_admissions + 1)) + 1.959964 / (3 * sqrt(unplanned_admissions + 1)), 3)
    / person_years as unplanned_rate_ci_high
from counts
