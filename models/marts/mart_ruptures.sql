-- Ruptures by breakdown, cohort, period and type: how many, still open, days without help,
-- time to detection and to repair (medians), and the share repaired within the target.
-- Each rupture once per period, under the episode that counts it (is_attributed).
-- Counted per episode first, then per breakdown (the breakdown pairs repeat each episode seven
-- times). A median is read from how many ruptures had each number of days, not from every value
-- of its group kept in memory: the same middle value (or mean of the two middle values), where
-- holding each group's values failed at 10,000,000 persons.
-- fct_ruptures is read once per use, not named once: a named set of rows read several times is
-- stored whole first.
with per_episode as (
    select
        episode_id,
        person_key,
        period,
        rupture_type,
        count(*) as ruptures,
        sum(case when is_open then 1 else 0 end) as still_open,
        sum(days_without_help) as days_without_help_sum,
        count(days_without_help) as days_without_help_known,
        sum(case when repaired_within_target then 1 else 0 end) as repaired_within_target
    from fct_ruptures
    where is_attributed
    group by episode_id, person_key, period, rupture_type
),

-- How many of an episode's ruptures had each number of days, for each measure with a median.
days_per_episode as (
    select
        episode_id,
        period,
        rupture_type,
        'without_help' as measure,
        days_without_help as days,
        count(*) as ruptures
    from fct_ruptures
    where is_attributed and days_without_help is not null
    group by episode_id, period, rupture_type, days_without_help
    union all
    select
        episode_id,
        period,
        rupture_type,
        'to_detection' as measure,
        days_to_detection as days,
        count(*) as ruptures
    from fct_ruptures
    where is_attributed and days_to_detection is not null
    group by episode_id, period, rupture_type, days_to_detection
    union all
    select
        episode_id,
        period,
        rupture_type,
        'to_repair' as measure,
        days_to_repair as days,
        count(*) as ruptures
    from fct_ruptures
    where is_attributed and days_to_repair is not null
    group by episode_id, period, rupture_type, days_to_repair
),

days_per_group as (
    select
        pairs.dimension,
        pairs.dimension_value,
        pairs.cohort,
        days_per_episode.period,
        days_per_episode.rupture_type,
        days_per_episode.measure,
        days_per_episode.days,
        sum(days_per_episode.ruptures) as ruptures
    from days_per_episode
    inner join int_episode_dimension_pairs as pairs on days_per_episode.episode_id = pairs.episode_id
    group by
        pairs.dimension, pairs.dimension_value, pairs.cohort, days_per_episode.period,
        days_per_episode.rupture_type, days_per_episode.measure, days_per_episode.days
),

-- Each number of days covers the positions (from 0, in increasing order) up_to - ruptures to
-- up_to - 1 of its group's values; the middle positions are (known - 1) / 2 rounded down and up.
days_positions as (
    select
        *,
        sum(ruptures) over (
            partition by dimension, dimension_value, cohort, period, rupture_type, measure
            order by days
            rows between unbounded preceding and current row
        ) as up_to,
        sum(ruptures) over (
            partition by dimension, dimension_value, cohort, period, rupture_type, measure
        ) as known
    from days_per_group
),

-- A median is the one number of days both middle positions fall on, else the mean of the two.
medians as (
    select
        dimension,
        dimension_value,
        cohort,
        period,
        rupture_type,
        avg(case when measure = 'without_help' then days end) as days_without_help_median,
        avg(case when measure = 'to_detection' then days end) as days_to_detection_median,
        avg(case when measure = 'to_repair' then days end) as days_to_repair_median
    from days_positions
    where
        (up_to - ruptures <= floor((known - 1) / 2) and floor((known - 1) / 2) < up_to)
        or (up_to - ruptures <= ceil((known - 1) / 2) and ceil((known - 1) / 2) < up_to)
    group by dimension, dimension_value, cohort, period, rupture_type
),

counts as (
    select
        pairs.dimension,
        pairs.dimension_value,
        pairs.cohort,
        per_episode.period,
        per_episode.rupture_type,
        cast(sum(per_episode.ruptures) as bigint) as ruptures,
        count(distinct per_episode.person_key) as persons,
        cast(sum(per_episode.still_open) as bigint) as still_open,
        cast(sum(per_episode.days_without_help_sum) as double)
        / nullif(sum(per_episode.days_without_help_known), 0) as days_without_help_mean,
        cast(sum(per_episode.repaired_within_target) as double) / sum(per_episode.ruptures)
            as share_repaired_within_target
    from per_episode
    inner join int_episode_dimension_pairs as pairs on per_episode.episode_id = pairs.episode_id
    group by pairs.dimension, pairs.dimension_value, pairs.cohort, per_episode.period, per_episode.rupture_type
)

select
    counts.dimension,
    counts.dimension_value,
    counts.cohort,
    counts.period,
    counts.rupture_type,
    counts.ruptures,
    counts.persons,
    counts.still_open,
    counts.days_without_help_mean,
    medians.days_without_help_median,
    medians.days_to_detection_median,
    medians.days_to_repair_median,
    counts.share_repaired_within_target
from counts
left join medians
    on
        counts.dimension = medians.dimension
        and counts.dimension_value is not distinct from medians.dimension_value
        and counts.cohort is not distinct from medians.cohort
        and counts.period = medians.period
        and counts.rupture_type = medians.rupture_type
