-- Per breakdown and cohort: time from referral to first contact and to a written plan
-- (medians, days), and the case mix (age, GIR 1-2, living alone).
with episodes as (
    select * from fct_episodes
)

select
    pairs.dimension,
    pairs.dimension_value,
    pairs.cohort,
    count(*) as episodes,
    count(distinct episodes.person_key) as persons,
    median(episodes.days_to_first_contact) as days_to_first_contact_median,
    count(episodes.days_to_plan) as episodes_with_plan,
    median(episodes.days_to_plan) as days_to_plan_median,
    avg(episodes.age_at_start) as age_mean,
    avg(case when episodes.gir_band = 'GIR 1-2' then 1.0 else 0.0 end) as share_gir_1_2,
    avg(case when episodes.lives_alone then 1.0 else 0.0 end) as share_living_alone
from episodes
inner join int_episode_dimension_pairs as pairs on episodes.episode_id = pairs.episode_id
group by pairs.dimension, pairs.dimension_value, pairs.cohort
