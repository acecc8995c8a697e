-- Per breakdown and cohort: time from referral to first contact and to a written plan
-- (medians, days; and how many episodes had a first contact within 7 days, for agencies'
-- comparison with their peers), and the case mix (age, GIR 1-2, living alone).
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
    count(episodes.days_to_first_contact) as episodes_with_contact,
    count(case when episodes.days_to_first_contact <= 7 then 1 end) as episodes_contacted_within_7_days,
    count(episodes.days_to_plan) as episodes_with_plan,
    median(episodes.days_to_plan) as days_to_plan_median,
    avg(episodes.age_at_start) as age_mean,
    avg(case when episodes.gir_band = 'GIR 1-2' then 1.0 else 0.0 end) as share_gir_1_2,
    avg(case when episodes.lives_alone then 1.0 else 0.0 end) as share_living_alone
from episodes
inner join int_episode_dimension_pairs as pairs on episodes.episode_id = pairs.episode_id
group by pairs.dimension, pairs.dimension_value, pairs.cohort
