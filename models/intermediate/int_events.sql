-- Health and care events once each, keyed by the person across the federation (person_key).
-- Two agencies that follow the same person both send their admissions, visits and benefit
-- notices: copies from different agencies of the same event type on the same day for the same
-- person_key are one event, kept from the most complete copy (discharge or repair date,
-- diagnosis, detection date filled), then the lowest agency and event_id. Within one agency
-- every row is its own event (two visits on one day stay two): the k-th of an agency's events
-- of a type on a day is matched with the k-th of the other agency's.
with events as not materialized (
    select * from stg_events
),

persons as materialized (
    select
        person_id,
        agency_id,
        person_key,
        count(distinct agency_id) over (partition by person_key) as agencies
    from stg_persons
),

keyed as not materialized (
    select
        events.*,
        coalesce(persons.person_key, events.person_id) as person_key,
        persons.agency_id as source_agency_id,
        coalesce(persons.agencies, 1) as agencies
    from events
    left join persons on events.person_id = persons.person_id
),

-- Only a person followed by several agencies can have copies to merge.
shared as (
    select * from keyed
    where agencies > 1
),

numbered as (
    select
        shared.*,
        row_number() over (
            partition by shared.person_key, shared.event_type, shared.event_date, shared.source_agency_id
            order by shared.event_id
        ) as same_day_number
    from shared
),

ranked as (
    select
        numbered.*,
        row_number() over (
            partition by numbered.person_key, numbered.event_type, numbered.event_date, numbered.same_day_number
            order by
                case when numbered.end_date is null then 1 else 0 end
                + case when numbered.diagnosis_group is null then 1 else 0 end
                + case when numbered.detected_date is null then 1 else 0 end,
                numbered.source_agency_id,
                numbered.event_id
        ) as copy_rank,
        count(*) over (
            partition by numbered.person_key, numbered.event_type, numbered.event_date, numbered.same_day_number
        ) as copies
    from numbered
)

select
    event_id,
    person_id,
    person_key,
    source_agency_id,
    event_type,
    event_date,
    end_date,
    is_planned,
    diagnosis_group,
    detected_date,
    benefit,
    1 as copies
from keyed
where agencies = 1
union all
select
    event_id,
    person_id,
    person_key,
    source_agency_id,
    event_type,
    event_date,
    end_date,
    is_planned,
    diagnosis_group,
    detected_date,
    benefit,
    copies
from ranked
where copy_rank = 1
