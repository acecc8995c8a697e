-- Unplanned hospitalisation rates per 1,000 person-years by cohort and period for the whole
-- federation, with their 95% interval: the funder overview's headline table, read from the
-- 'all' breakdown of mart_hospital_outcomes. Descriptive: not adjusted for case mix.
select
    cohort,
    period,
    episodes,
    persons,
    person_days,
    person_years,
    unplanned_admissions,
    planned_admissions,
    unplanned_rate_per_1000py,
    unplanned_rate_ci_low,
    unplanned_rate_ci_high
from mart_hospital_outcomes
where dimension = 'all'
