-- Person-time after the index date split by calendar month: person_days, the episode's own (an
-- agency's caseload counts its episodes), and attributed_days, each day of a person counted
-- once (int_attributed_time), for the federation's monthly rates.
with follow_up as not materialized (
    select * from int_episode_dimensions
    where follow_up_end >= start_date
),

-- Each episode's months, with the episode's own columns carried along (no join back by episode).
episode_months as materialized (
    select
        follow_up.episode_id,
        follow_up.cohort,
        follow_up.person_episodes,
        follow_up.start_date,
        follow_up.follow_up_end,
        cast(month_series.month_start as date) as month_start,
        cast(month_series.month_start + interval '1' month - interval '1' day as date) as month_end
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
    where episode_months.person_episodes > 1
    group by episode_months.episode_id, episode_months.month_start
),

own_days as (
    select
        episode_months.*,
        date_diff(
            'day',
            greatest(episode_months.start_date, episode_months.month_start),
            least(episode_months.follow_up_end, episode_months.month_end)
        ) + 1 as person_days
    from episode_months
)

select
    episode_months.episode_id,
    episode_months.cohort,
    episode_months.month_start,
    episode_months.person_days,
    -- A person's only episode owns all its days.
    case
        when episode_months.person_episodes = 1 then episode_months.person_days
        else coalesce(attributed.attributed_days, 0)
    end as attributed_days
from own_days as episode_months
left join attributed
    on episode_months.episode_id = attributed.episode_id and episode_months.month_start = attributed.month_start
