-- Home-help hours per episode and month, before and after the index date: granted,
-- delivered, and unused (granted but not delivered, never negative).
with plans as (
    select
        person_id,
        month_start,
        sum(hours_granted) as hours_granted,
        sum(hours_delivered) as hours_delivered
    from stg_service_plans
    group by person_id, month_start
)

select
    periods.episode_id,
    periods.person_id,
    periods.agency_id,
    periods.cohort,
    periods.period,
    dimensions.agency_model,
    dimensions.departement,
    dimensions.gir_band,
    dimensions.age_band,
    plans.month_start,
    plans.hours_granted,
    plans.hours_delivered,
    greatest(plans.hours_granted - plans.hours_delivered, 0) as hours_unused
from plans
inner join int_person_time as periods
    on
        plans.person_id = periods.person_id
        -- The month of the index date belongs to the after period only.
        and (
            (
                periods.period = 'after'
                and plans.month_start between cast(date_trunc('month', periods.period_start) as date) and periods.period_end
            )
            or (
                periods.period = 'before'
                and plans.month_start >= cast(date_trunc('month', periods.period_start) as date)
                and plans.month_start < cast(date_trunc('month', periods.period_end + interval '1' day) as date)
            )
        )
inner join int_episode_dimensions as dimensions on periods.episode_id = dimensions.episode_id
