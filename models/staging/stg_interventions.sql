-- What care managers put in place (the free-text note stays in the raw table).
with source as (
    select * from raw_interventions
)

select
    intervention_id,
    episode_id,
    intervention_date,
    intervention_type
from source
