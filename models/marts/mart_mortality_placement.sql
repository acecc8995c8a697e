-- Deaths and institutional placements after the index date, per 1,000 person-years, by
-- breakdown and cohort. Placement has death as a competing risk: first_* counts say which
-- came first, so placement rates are cause-specific. A person's overlapping episodes share their
-- days and their death: each is counted once, under the episode that owns the day (fct_episodes:
-- attributed_follow_up_days, *_attributed).
with episodes as (
    select * from fct_episodes
)

select
    pairs.dimension,
    pairs.dimension_value,
    pairs.cohort,
    count(*) as episodes,
    count(distinct episodes.person_key) as persons,
    sum(episodes.attributed_follow_up_days) / 365.25 as person_years,
    cast(sum(case when episodes.death_attributed then 1 else 0 end) as bigint) as deaths,
    cast(sum(case when episodes.placement_attributed then 1 else 0 end) as bigint) as placements,
    cast(sum(
        case when episodes.first_event = 'placement' and episodes.first_event_attributed then 1 else 0 end
    ) as bigint) as first_event_placement,
    cast(sum(case when episodes.first_event = 'death' and episodes.first_event_attributed then 1 else 0 end) as bigint)
        as first_event_death,
    1000.0 * sum(case when episodes.death_attributed then 1 else 0 end)
    / (sum(episodes.attributed_follow_up_days) / 365.25) as mortality_per_1000py,
    1000.0 * sum(case when episodes.first_event = 'placement' and episodes.first_event_attributed then 1 else 0 end)
    / (sum(episodes.attributed_follow_up_days) / 365.25) as placement_per_1000py
from episodes
inner join int_episode_dimension_pairs as pairs on episodes.episode_id = pairs.episode_id
group by pairs.dimension, pairs.dimension_value, pairs.cohort
having sum(episodes.attributed_follow_up_days) > 0
