-- Home-help hours per person (person_key) and month, summed over funders, each funder's hours
-- once: when two agencies that follow the same person both report the same funder's hours for a
-- month, the lowest agency's row is kept (they describe the same plan). Both readers (delivery
-- and ruptures) want a person's month whatever the funder: summed once here, not once each.
-- The plans are read twice, straight from their staging view, once per kind of person: a query
-- that names one set of rows twice is stored whole by the engine first (240 million rows at
-- 10,000,000 persons), whereas two scans of the raw zone stream.
with persons as materialized (
    select
        person_id,
        agency_id,
        person_key,
        count(distinct agency_id) over (partition by person_key) as agencies
    from stg_persons
),

-- A person followed by one agency (or by none known) has each month reported once.
followed_once as (
    select
        coalesce(persons.person_key, plans.person_id) as person_key,
        plans.month_start,
        plans.hours_granted,
        plans.hours_delivered
    from stg_service_plans as plans
    left join persons on plans.person_id = persons.person_id
    where coalesce(persons.agencies, 1) = 1
),

-- Only a person followed by several agencies can have the same month reported twice.
followed_twice as (
    select
        persons.person_key,
        plans.month_start,
        plans.hours_granted,
        plans.hours_delivered,
        row_number() over (
            partition by persons.person_key, plans.month_start, plans.funder
            order by persons.agency_id, plans.person_id
        ) as copy_rank
    from stg_service_plans as plans
    inner join persons on plans.person_id = persons.person_id
    where persons.agencies > 1
),

once_per_funder as (
    select person_key, month_start, hours_granted, hours_delivered
    from followed_once
    union all
    select person_key, month_start, hours_granted, hours_delivered
    from followed_twice
    where copy_rank = 1
)

select
    person_key,
    month_start,
    sum(hours_granted) as hours_granted,
    sum(hours_delivered) as hours_delivered
from once_per_funder
group by person_key, month_start
