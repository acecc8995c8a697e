-- Ruptures by breakdown, cohort, period and type: how many, still open, days without help,
-- time to detection and to repair (medians), and the share repaired within the target.
-- Each rupture once per period, under the episode that counts it (is_attributed).
with ruptures as (
    select * from fct_ruptures
    where is_attributed
)

select
    pairs.dimension,
    pairs.dimension_value,
    pairs.cohort,
    ruptures.period,
    ruptures.rupture_type,
    count(*) as ruptures,
    count(distinct ruptures.person_key) as persons,
    cast(sum(case when ruptures.is_open then 1 else 0 end) as bigint) as still_open,
    avg(ruptures.days_without_help) as days_without_help_mean,
    median(ruptures.days_without_help) as days_without_help_median,
    median(ruptures.days_to_detection) as days_to_detection_median,
    median(ruptures.days_to_repair) as days_to_repair_median,
    avg(case when ruptures.repaired_within_target then 1.0 else 0.0 end) as share_repaired_within_target
from ruptures
inner join int_episode_dimension_pairs as pairs on ruptures.episode_id = pairs.episode_id
group by pairs.dimension, pairs.dimension_value, pairs.cohort, ruptures.period, ruptures.rupture_type
