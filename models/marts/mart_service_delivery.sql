-- Home-help delivery by breakdown, cohort and period: hours granted, delivered and unused,
-- and delivered over granted.
-- Each person-month once per period, under the episode that counts it (is_attributed).
with delivery as (
    select * from fct_service_delivery
    where is_attributed
)

select
    pairs.dimension,
    pairs.dimension_value,
    pairs.cohort,
    delivery.period,
    count(distinct delivery.person_key) as persons,
    count(*) as person_months,
    sum(delivery.hours_granted) as hours_granted,
    sum(delivery.hours_delivered) as hours_delivered,
    sum(delivery.hours_unused) as hours_unused,
    sum(delivery.hours_delivered) / nullif(sum(delivery.hours_granted), 0) as delivery_ratio
from delivery
inner join int_episode_dimension_pairs as pairs on delivery.episode_id = pairs.episode_id
group by pairs.dimension, pairs.dimension_value, pairs.cohort, delivery.period
