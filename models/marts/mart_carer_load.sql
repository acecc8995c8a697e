-- Carer load by breakdown and cohort: Zarit (22-item form) at baseline and its change at 6
-- and 12 months, the severe band (61-88) at baseline and at 12 months, carer hours per
-- week, and carers back in work. Means are over the carers with both measures.
-- A baseline assessment shared by overlapping episodes counts once (is_attributed).
with load as (
    select * from fct_carer_load
    where is_attributed
)

select
    pairs.dimension,
    pairs.dimension_value,
    pairs.cohort,
    count(load.zarit_baseline) as carers_assessed,
    avg(load.zarit_baseline) as zarit_baseline_mean,
    count(load.zarit_change_6m) as carers_with_6m,
    avg(load.zarit_change_6m) as zarit_change_6m_mean,
    count(load.zarit_change_12m) as carers_with_12m,
    avg(load.zarit_change_12m) as zarit_change_12m_mean,
    cast(sum(case when load.zarit_band_baseline = '61-88' then 1 else 0 end) as bigint) as severe_at_baseline,
    cast(sum(
        case when load.zarit_band_baseline = '61-88' and load.zarit_band_12m is not null then 1 else 0 end
    ) as bigint) as severe_at_baseline_with_12m,
    cast(sum(
        case when load.zarit_band_baseline = '61-88' and load.zarit_band_12m <> '61-88' then 1 else 0 end
    ) as bigint) as left_severe_band,
    avg(load.carer_hours_baseline) as carer_hours_baseline_mean,
    avg(load.carer_hours_12m - load.carer_hours_baseline) as carer_hours_change_12m_mean,
    cast(sum(case when load.carer_out_of_work_at_baseline then 1 else 0 end) as bigint) as carers_out_of_work,
    cast(sum(case when load.carer_back_in_work then 1 else 0 end) as bigint) as carers_back_in_work
from load
inner join int_episode_dimension_pairs as pairs on load.episode_id = pairs.episode_id
group by pairs.dimension, pairs.dimension_value, pairs.cohort
