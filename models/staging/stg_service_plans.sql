-- Home-help hours granted and delivered, per person, month and funder.
with source as (
    select * from raw_service_plans
)

select
    person_id,
    month as month_start,
    funder,
    hours_granted,
    hours_delivered
from source
