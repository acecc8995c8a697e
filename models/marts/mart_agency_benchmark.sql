-- Indirect standardisation for benchmarking, NOT a causal estimate: each agency's unplanned
-- admissions after the index date (care-managed episodes) against those expected if its
-- people had the federation's rates for their age band and GIR band. The ratio
-- observed / expected has a 95% interval from Byar's approximation (expected taken as
-- fixed). Agencies are compared with the federation, not with each other. Days and admissions
-- are counted once, under the episode that owns them (int_attributed_time), so that observed and
-- expected add up to the federation's totals.
with person_time as (
    select
        segments.episode_id,
        dimensions.agency_id,
        dimensions.agency_model,
        dimensions.age_band,
        dimensions.gir_band,
        sum(segments.person_days) as person_days
    from int_attributed_time as segments
    inner join int_episode_dimensions as dimensions on segments.episode_id = dimensions.episode_id
    where segments.period = 'after' and dimensions.cohort = 'care_managed'
    group by
        segments.episode_id, dimensions.agency_id, dimensions.agency_model, dimensions.age_band, dimensions.gir_band
),

admissions as (
    select
        episode_id,
        sum(case when is_planned then 0 else 1 end) as unplanned_admissions
    from fct_hospital_admissions
    where period = 'after' and cohort = 'care_managed' and is_attributed
    group by episode_id
),

episodes as materialized (
    select
        person_time.*,
        coalesce(admissions.unplanned_admissions, 0) as unplanned_admissions
    from person_time
    left join admissions on person_time.episode_id = admissions.episode_id
),

reference_rates as (
    select
        age_band,
        gir_band,
        sum(unplanned_admissions) / (sum(person_days) / 365.25) as rate_per_year
    from episodes
    group by age_band, gir_band
),

by_agency as (
    select
        episodes.agency_id,
        episodes.agency_model,
        count(*) as episodes,
        sum(episodes.person_days) / 365.25 as person_years,
        cast(sum(episodes.unplanned_admissions) as bigint) as observed,
        sum(reference_rates.rate_per_year * episodes.person_days / 365.25) as expected
    from episodes
    inner join reference_rates
        on episodes.age_band = reference_rates.age_band and episodes.gir_band = reference_rates.gir_band
    group by episodes.agency_id, episodes.agency_model
)

select
    agency_id,
    agency_model,
    episodes,
    person_years,
    observed,
    expected,
    observed / nullif(expected, 0) as observed_over_expected,
    case
        when observed = 0 then 0.0
        else observed * power(1 - 1 / (9.0 * observed) - 1.959964 / (3 * sqrt(observed)), 3) / nullif(expected, 0)
    end as ratio_ci_low,
    (observed + 1)
    * power(1 - 1 / (9.0 * (observed + 1)) + 1.959964 / (3 * sqrt(observed + 1)), 3)
    / nullif(expected, 0) as ratio_ci_high,
    'indirect standardisation for benchmarking: not causal' as interpretation
from by_agency
