-- The date up to which exports are complete: the analyst's setting when given, otherwise
-- the last date seen in any event or episode.
with parameters as (
    select data_cutoff from ref_run_parameters
),

last_event as (
    select max(event_date) as last_date from stg_events
),

last_episode as (
    select max(coalesce(end_date, start_date)) as last_date from stg_episodes
)

select
    coalesce(
        parameters.data_cutoff,
        greatest(last_event.last_date, last_episode.last_date)
    ) as data_cutoff
from parameters
cross join last_event
cross join last_episode
