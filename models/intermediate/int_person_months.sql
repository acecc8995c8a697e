-- Person-time after the index date split by calendar month, for monthly rates.
with follow_up as (
    select * from int_episode_dimensions
    where follow_up_end >= start_date
),

months as (
    select
        follow_up.episode_id,
        month_series.month_start
    from follow_up
    cross join
        unnest(
            generate_series(
                date_trunc('month', follow_up.start_date),
                date_trunc('month', follow_up.follow_up_end),
                interval '1' month
            )
        ) as month_series (month_start)
)

select
    follow_up.episode_id,
    follow_up.cohort,
    cast(months.month_start as date) as month_start,
    date_diff(
        'day',
        greatest(follow_up.start_date, cast(months.month_start as date)),
        least(follow_up.follow_up_end, cast(months.month_start + interval '1' month - interval '1' day as date))
    ) + 1 as person_days
from months
inner join follow_up on months.episode_id = follow_up.episode_id
