-- Outcomes by calendar month after the index date and cohort: person-time, unplanned
-- admissions (per 1,000 person-years), 30-day readmissions, emergency visits without
-- admission, deaths and placements (first event), ruptures by the month they started, and
-- home-help hours granted and delivered. Carer load is measured at 6 and 12 months, not by
-- calendar month (see mart_carer_load). Each day and event of a person is counted once, under
-- the episode that owns it (int_attributed_time; the facts' is_attributed).
with person_time as (
    select
        cohort,
        month_start,
        sum(attributed_days) as person_days
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
    where period = 'after' and is_attributed
    group by cohort, month_start
),

visits as (
    select
        cohort,
        month_start,
        sum(case when followed_by_admission then 0 else 1 end) as emergency_visits_without_admission
    from fct_emergency_visits
    where period = 'after' and is_attributed
    group by cohort, month_start
),

endings as (
    select
        cohort,
        cast(date_trunc('month', first_event_date) as date) as month_start,
        sum(case when first_event = 'death' then 1 else 0 end) as first_event_death,
        sum(case when first_event = 'placement' then 1 else 0 end) as first_event_placement
    from fct_episodes
    where first_event <> 'none' and first_event_attributed
    group by cohort, cast(date_trunc('month', first_event_date) as date)
),

ruptures as (
    select
        cohort,
        cast(date_trunc('month', rupture_start) as date) as month_start,
        count(*) as ruptures_started
    from fct_ruptures
    where period = 'after' and is_attributed
    group by cohort, cast(date_trunc('month', rupture_start) as date)
),

delivery as (
    select
        cohort,
        month_start,
        sum(hours_granted) as hours_granted,
        sum(hours_delivered) as hours_delivered
    from fct_service_delivery
    where period = 'after' and is_attributed
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
    cast(coalesce(endings.first_event_death, 0) as bigint) as first_event_death,
    cast(coalesce(endings.first_event_placement, 0) as bigint) as first_event_placement,
    cast(coalesce(ruptures.ruptures_started, 0) as bigint) as ruptures_started,
    delivery.hours_granted,
    delivery.hours_delivered,
    1000.0 * coalesce(admissions.unplanned_admissions, 0) / (person_time.person_days / 365.25)
        as unplanned_rate_per_1000py
from person_time
left join admissions
    on person_time.cohort = admissions.cohort and person_time.month_start = admissions.month_start
left join visits on person_time.cohort = visits.cohort and person_time.month_start = visits.month_start
left join endings on person_time.cohort = endings.cohort and person_time.month_start = endings.month_start
left join ruptures on person_time.cohort = ruptures.cohort and person_time.month_start = ruptures.month_start
left join delivery on person_time.cohort = delivery.cohort and person_time.month_start = delivery.month_start
where person_time.person_days > 0
