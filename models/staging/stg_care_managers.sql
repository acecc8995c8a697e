-- Care managers and their full-time equivalent.
with source as (
    select * from raw_care_managers
)

select
    care_manager_id,
    agency_id,
    fte
from source
