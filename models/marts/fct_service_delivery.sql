-- Home-help hours per episode and month, before and after the index date: granted,
-- delivered, and unused (granted but not delivered, never negative). Hours are the person's
-- (person_key), each funder's once (int_service_plans); each episode sees its person's
-- months, and is_attributed marks the one episode that counts a month of a period in totals,
-- chosen as int_attributed_time chooses a day's owner: care-managed first, then the earliest
-- start, then the smallest episode_id.
-- The episode's other dimensions (agency, département, GIR and age bands) are not repeated on each
-- month: its readers join int_episode_dimensions (or its pairs) by episode_id where they need them. Its
-- person and cohort are the episode's own, carried by int_person_time (no join back by episode).
-- This is the warehouse's largest table (16.6 million rows at 1,000,000 persons), and writing six
-- more columns of it, the person's pseudonym among them, took longer than its query.
with plans as (
    select * from int_service_plans
),

placed as materialized (
    select
        plans.*,
        periods.episode_id,
        periods.period,
        periods.cohort,
        periods.start_date,
        periods.person_episodes
    from plans
    inner join int_person_time as periods
        on
            plans.person_key = periods.person_key
            -- The month of the index date belongs to the after period only.
            and (
                (
                    periods.period = 'after'
                    and plans.month_start
                    between cast(date_trunc('month', periods.period_start) as date) and periods.period_end
                )
                or (
                    periods.period = 'before'
                    and plans.month_start >= cast(date_trunc('month', periods.period_start) as date)
                    and plans.month_start < cast(date_trunc('month', periods.period_end + interval '1' day) as date)
                )
            )
),

ranked as (
    select
        placed.*,
        row_number() over (
            partition by placed.person_key, placed.month_start, placed.period
            order by
                case when placed.cohort = 'care_managed' then 0 else 1 end,
                placed.start_date,
                placed.episode_id
        ) = 1 as is_attributed
    from placed
    where placed.person_episodes > 1
),

attributed as (
    -- A person's only episode counts all its months.
    select
        placed.*,
        true as is_attributed
    from placed
    where placed.person_episodes = 1
    union all
    select * from ranked
)

select
    episode_id,
    person_key,
    cohort,
    period,
    month_start,
    hours_granted,
    hours_delivered,
    greatest(hours_granted - hours_delivered, 0) as hours_unused,
    is_attributed
from attributed
