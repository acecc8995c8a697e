-- Home-help delivery by breakdown, cohort and period: hours granted, delivered and unused,
-- and delivered over granted.
-- Each person-month once per period, under the episode that counts it (is_attributed).
-- Each episode's months are summed first, then the breakdowns (seven rows per episode) add
-- those sums: the same totals as adding each month under every breakdown, from far fewer rows.
with delivery as (
    select * from fct_service_delivery
    where is_attributed
),

per_episode as (
    select
        episode_id,
        person_key,
        period,
        count(*) as person_months,
        sum(hours_granted) as hours_granted,
        sum(hours_delivered) as hours_delivered,
        sum(hours_unused) as hours_unused
    from delivery
    group by episode_id, person_key, period
)

select
    pairs.dimension,
    pairs.dimension_value,
    pairs.cohort,
    per_episode.period,
    count(distinct per_episode.person_key) as persons,
    cast(sum(per_episode.person_months) as bigint) as person_months,
    sum(per_episode.hours_granted) as hours_granted,
    sum(per_episode.hours_delivered) as hours_delivered,
    sum(per_episode.hours_unused) as hours_unused,
    sum(per_episode.hours_delivered) / nullif(sum(per_episode.hours_granted), 0) as delivery_ratio
from per_episode
inner join int_episode_dimension_pairs as pairs on per_episode.episode_id = pairs.episode_id
group by pairs.dimension, pairs.dimension_value, pairs.cohort, per_episode.period
