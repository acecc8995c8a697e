-- Home-help hours per person (person_key), month and funder, once each: when two agencies that
-- follow the same person both report the same funder's hours for a month, the lowest agency's
-- row is kept (they describe the same plan).
with plans as (
    select * from stg_service_plans
),

persons as (
    select
        person_id,
        agency_id,
        person_key
    from stg_persons
),

ranked as (
    select
        plans.*,
        coalesce(persons.person_key, plans.person_id) as person_key,
        row_number() over (
            partition by coalesce(persons.person_key, plans.person_id), plans.month_start, plans.funder
            order by persons.agency_id, plans.person_id
        ) as copy_rank
    from plans
    left join persons on plans.person_id = persons.person_id
)

select
    person_key,
    month_start,
    funder,
    hours_granted,
    hours_delivered
from ranked
where copy_rank = 1
