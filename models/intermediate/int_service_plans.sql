-- Home-help hours per person (person_key) and month, summed over funders, each funder's hours
-- once: when two agencies that follow the same person both report the same funder's hours for a
-- month, the lowest agency's row is kept (they describe the same plan). Both readers (delivery
-- and ruptures) want a person's month whatever the funder: summed once here, not once each.
with plans as (
    select * from stg_service_plans
),

persons as (
    select
        person_id,
        agency_id,
        person_key,
        count(distinct agency_id) over (partition by person_key) as agencies
    from stg_persons
),

keyed as (
    select
        plans.*,
        coalesce(persons.person_key, plans.person_id) as person_key,
        persons.agency_id,
        coalesce(persons.agencies, 1) as agencies
    from plans
    left join persons on plans.person_id = persons.person_id
),

-- Only a person followed by several agencies can have the same month reported twice.
ranked as (
    select
        keyed.*,
        row_number() over (
            partition by keyed.person_key, keyed.month_start, keyed.funder
            order by keyed.agency_id, keyed.person_id
        ) as copy_rank
    from keyed
    where keyed.agencies > 1
),

once_per_funder as (
    select
        person_key,
        month_start,
        hours_granted,
        hours_delivered
    from keyed
    where agencies = 1
    union all
    select
        person_key,
        month_start,
        hours_granted,
        hours_delivered
    from ranked
    where copy_rank = 1
)

select
    person_key,
    month_start,
    sum(hours_granted) as hours_granted,
    sum(hours_delivered) as hours_delivered
from once_per_funder
group by person_key, month_start
