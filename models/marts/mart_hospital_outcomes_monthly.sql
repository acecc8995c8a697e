-- Unplanned admissions and emergency visits without admission per 1,000 person-years, by
-- calendar month after the index date and cohort.
with person_time as (
    select
        cohort,
        month_start,
        sum(person_days) as person_days
    from int_person_months
    group by cohort, month_start
),

admissions as (
    select
        cohort,
        month_start,
        sum(case when is_planned then 0 else 1 end) as unplanned_admissions,
        sum(case when is_readmission then 1 else 0 end) as readmissions_30d
    from fct_hospital_admissions
    where period = 'after'
    group by cohort, month_start
),

visits as (
    select
        cohort,
        month_start,
        sum(case when followed_by_admission then 0 else 1 end) as emergency_visits_without_admission
    from fct_emergency_visits
    where period = 'after'
    group by cohort, month_start
)

select
    person_time.cohort,
    person_time.month_start,
    cast(person_time.person_days as bigint) as person_days,
    person_time.person_days / 365.25 as person_years,
    cast(coalesce(admissions.unplanned_admissions, 0) as bigint) as unplanned_admissions,
    cast(coalesce(admissions.readmissions_30d, 0) as bigint) as readmissions_30d,
    cast(coalesce(visits.emergency_visits_without_admission, 0) as bigint) as emergency_visits_without_admission,
    1000.0 * coalesce(admissions.unplanned_admissions, 0) / (person_time.person_days / 365.25)
        as unplanned_rate_per_1000py
from person_time
left join admissions
    on person_time.cohort = admissions.cohort and person_time.month_start = admissions.month_start
left join visits on person_time.cohort = visits.cohort and person_time.month_start = visits.month_start
where person_time.person_days > 0
