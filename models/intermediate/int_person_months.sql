-- Person-time after the index date split by calendar month: person_days, the episode's own (an
-- agency's caseload counts its episodes), and attributed_days, each day of a person counted
-- once (int_attributed_time), for the federation's monthly rates.
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
),

episode_months as (
    select
        follow_up.episode_id,
        follow_up.cohort,
        follow_up.start_date,
        follow_up.follow_up_end,
        cast(months.month_start as date) as month_start,
        cast(months.month_start + interval '1' month - interval '1' day as date) as month_end
    from months
    inner join follow_up on months.episode_id = follow_up.episode_id
),

attributed as (
    select
        episode_months.episode_id,
        episode_months.month_start,
        sum(
            date_diff(
                'day',
                greatest(segments.segment_start, episode_months.month_start),
                least(segments.segment_end, episode_months.month_end)
            ) + 1
        ) as attributed_days
    from episode_months
    inner join int_attributed_time as segments
        on
            episode_months.episode_id = segments.episode_id
            and segments.period = 'after'
            and segments.segment_start <= episode_months.month_end
            and segments.segment_end >= episode_months.month_start
    group by episode_months.episode_id, episode_months.month_start
)

select
    episode_months.episode_id,
    episode_months.cohort,
    episode_months.month_start,
    date_diff(
        'day',
        greatest(episode_months.start_date, episode_months.month_start),
        least(episode_months.follow_up_end, episode_months.month_end)
    ) + 1 as person_days,
    coalesce(attributed.attributed_days, 0) as attributed_days
from episode_months
left join attributed
    on episode_months.episode_id = attributed.episode_id and episode_months.month_start = attributed.month_start
