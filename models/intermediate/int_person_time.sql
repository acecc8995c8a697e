-- Person-time at risk for each episode, in two periods around the index date:
--   before: the 365 days before start_date (start_date - 365 to start_date - 1);
--   after:  start_date to the end of follow-up (end_date, else the data cut-off), inclusive.
-- Each episode is its own unit here: a person's overlapping episodes each have their whole
-- windows (int_attributed_time counts each day once, for federation totals).
with follow_up as not materialized (
    select * from int_episode_dimensions
),

before_index as (
    select
        episode_id,
        person_id,
        person_key,
        person_episodes,
        agency_id,
        cohort,
        start_date,
        'before' as period,
        cast(start_date - interval '365' day as date) as period_start,
        cast(start_date - interval '1' day as date) as period_end,
        365 as person_days
    from follow_up
),

after_index as (
    select
        episode_id,
        person_id,
        person_key,
        person_episodes,
        agency_id,
        cohort,
        start_date,
        'after' as period,
        start_date as period_start,
        follow_up_end as period_end,
        date_diff('day', start_date, follow_up_end) + 1 as person_days
    from follow_up
    where follow_up_end >= start_date
)

select * from before_index
union all
select * from after_index
