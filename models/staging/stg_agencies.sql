-- Member agencies, one row each, as sent in their own exports.
with source as (
    select * from raw_agencies
)

select
    agency_id,
    model as agency_model,
    departement
from source
