-- Health and care events. An admission not marked as planned counts as unplanned:
-- when in doubt, a stay is not excused from the outcome.
with source as (
    select * from raw_events
)

select
    event_id,
    person_id,
    event_type,
    event_date,
    end_date,
    coalesce(planned, false) as is_planned,
    diagnosis_group,
    detected_date,
    benefit
from source
