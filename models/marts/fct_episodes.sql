-- One row per episode: its dimensions, timeliness (days from referral to first contact and
-- to the written plan), and how follow-up ended: death and institutional placement during
-- follow-up, and which came first (death is a competing risk for placement), from the person's
-- events at any agency (person_key). Each episode is its own unit; for federation totals,
-- attributed_follow_up_days are its days of follow-up that no other episode of the person counts
-- (int_attributed_time) and *_attributed say whether a death or placement is counted under it.
-- Overlaps: other_episodes of the same person (any agency); concurrent_care_management, a
-- comparison episode whose follow-up overlaps a care-managed episode of the same person (a
-- study's comparison group should leave it out); care_managed_before, an earlier care-managed
-- episode ended before this one started. history_days_available: days of events the agency's
-- export covers before the index date (from its earliest event of anyone).
with dimensions as not materialized (
    select * from int_episode_dimensions
),

terminal as (
    select
        person_key,
        min(case when event_type = 'death' then event_date end) as death_date,
        min(case when event_type = 'institutional_placement' then event_date end) as placement_date
    from int_events
    where event_type in ('death', 'institutional_placement')
    group by person_key
),

others as (
    select
        dimensions.episode_id,
        count(other.episode_id) as other_episodes,
        max(
            case
                when
                    other.cohort = 'care_managed'
                    and other.start_date <= dimensions.follow_up_end
                    and other.follow_up_end >= dimensions.start_date
                    then 1
                else 0
            end
        ) as overlaps_care_management,
        max(case when other.cohort = 'care_managed' and other.follow_up_end < dimensions.start_date then 1 else 0 end)
            as care_managed_earlier
    from dimensions
    left join dimensions as other
        on dimensions.person_key = other.person_key and dimensions.episode_id <> other.episode_id
    group by dimensions.episode_id
),

agency_history as (
    select
        persons.agency_id,
        min(events.event_date) as first_event_date
    from stg_events as events
    inner join stg_persons as persons on events.person_id = persons.person_id
    group by persons.agency_id
),

outcomes as materialized (
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
    left join terminal on dimensions.person_key = terminal.person_key
),

firsts as not materialized (
    select
        outcomes.*,
        case
            when placement_date is null then death_date
            when death_date is null then placement_date
            when placement_date <= death_date then placement_date
            else death_date
        end as first_event_date
    from outcomes
),

owned as (
    select
        firsts.episode_id,
        sum(segments.person_days) as attributed_follow_up_days,
        max(case when firsts.death_date between segments.segment_start and segments.segment_end then 1 else 0 end)
            as owns_death,
        max(
            case when firsts.placement_date between segments.segment_start and segments.segment_end then 1 else 0 end
        ) as owns_placement,
        max(
            case when firsts.first_event_date between segments.segment_start and segments.segment_end then 1 else 0 end
        ) as owns_first_event
    from firsts
    inner join int_attributed_time as segments
        on firsts.episode_id = segments.episode_id and segments.period = 'after'
    group by firsts.episode_id
)

select
    firsts.*,
    date_diff('day', firsts.referral_date, firsts.first_contact_date) as days_to_first_contact,
    date_diff('day', firsts.referral_date, firsts.plan_date) as days_to_plan,
    date_diff('day', firsts.start_date, firsts.follow_up_end) + 1 as follow_up_days,
    case
        when firsts.placement_date is not null and (firsts.death_date is null or firsts.placement_date <= firsts.death_date)
            then 'placement'
        when firsts.death_date is not null then 'death'
        else 'none'
    end as first_event,
    date_diff('day', firsts.start_date, coalesce(firsts.first_event_date, firsts.follow_up_end)) as days_to_first_event,
    coalesce(owned.attributed_follow_up_days, 0) as attributed_follow_up_days,
    coalesce(owned.owns_death, 0) = 1 as death_attributed,
    coalesce(owned.owns_placement, 0) = 1 as placement_attributed,
    coalesce(owned.owns_first_event, 0) = 1 as first_event_attributed,
    others.other_episodes,
    firsts.cohort = 'comparison' and others.overlaps_care_management = 1 as concurrent_care_management,
    others.care_managed_earlier = 1 as care_managed_before,
    greatest(date_diff('day', agency_history.first_event_date, firsts.start_date), 0) as history_days_available
from firsts
inner join others on firsts.episode_id = others.episode_id
left join owned on firsts.episode_id = owned.episode_id
left join agency_history on firsts.agency_id = agency_history.agency_id
