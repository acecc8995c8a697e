-- One row per episode: its dimensions, timeliness (days from referral to first contact and
-- to the written plan), and how follow-up ended: death and institutional placement during
-- follow-up, and which came first (death is a competing risk for placement).
with dimensions as (
    select * from int_episode_dimensions
),

terminal as (
    select
        person_id,
        min(case when event_type = 'death' then event_date end) as death_date,
        min(case when event_type = 'institutional_placement' then event_date end) as placement_date
    from stg_events
    where event_type in ('death', 'institutional_placement')
    group by person_id
),

outcomes as (
    select
        dimensions.*,
        case
            when terminal.death_date between dimensions.start_date and dimensions.follow_up_end
                then terminal.death_date
        end as death_date,
        case
            when terminal.placement_date between dimensions.start_date and dimensions.follow_up_end
                then terminal.placement_date
        end as placement_date
    from dimensions
    left join terminal on dimensions.person_id = terminal.person_id
),

firsts as (
    select
        outcomes.*,
        case
            when placement_date is null then death_date
            when death_date is null then placement_date
            when placement_date <= death_date then placement_date
            else death_date
        end as first_event_date
    from outcomes
)

select
    *,
    date_diff('day', referral_date, first_contact_date) as days_to_first_contact,
    date_diff('day', referral_date, plan_date) as days_to_plan,
    date_diff('day', start_date, follow_up_end) + 1 as follow_up_days,
    case
        when placement_date is not null and (death_date is null or placement_date <= death_date) then 'placement'
        when death_date is not null then 'death'
        else 'none'
    end as first_event,
    date_diff('day', start_date, coalesce(first_event_date, follow_up_end)) as days_to_first_event
from firsts
