-- Episodes by agency and cohort: who referred them (referral_source) and who pays for the
-- care management (payer), one row per (agency, cohort, dimension, value).
with episodes as not materialized (
    select
        agency_id,
        cohort,
        referral_source,
        payer
    from stg_episodes
)

select
    agency_id,
    cohort,
    'referral_source' as dimension,
    referral_source as dimension_value,
    count(*) as episodes
from episodes
group by agency_id, cohort, referral_source
union all
select
    agency_id,
    cohort,
    'payer' as dimension,
    payer as dimension_value,
    count(*) as episodes
from episodes
group by agency_id, cohort, payer
