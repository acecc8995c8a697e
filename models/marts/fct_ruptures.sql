-- Ruptures in the care pathway, one row each, placed in an episode's before or after period
-- by their start (one that started earlier and was still open when the before window opened
-- counts in the before period):
--   service_interruption: an interruption event (start, detection, restoration);
--   discharge_without_support: a discharge home after an unplanned stay, or an emergency
--     visit not followed by an admission, of someone with no home help delivered the month
--     before, with no provider found within discharge_support_days (repaired when one is);
--   benefit_lapse: a lapsed benefit (repaired when the same benefit is granted again);
--   delivery_shortfall: consecutive months with hours delivered below
--     delivery_shortfall_share of hours granted (repaired the first month back above it).
-- Days without help run from the start to the repair (or the end of follow-up); time to
-- repair runs from detection when it is known, else from the start.
with events as (
    select * from stg_events
),

parameters as (
    select * from int_outcome_parameters
),

plans as (
    select
        person_id,
        month_start,
        sum(hours_granted) as hours_granted,
        sum(hours_delivered) as hours_delivered
    from stg_service_plans
    group by person_id, month_start
),

interruptions as (
    select
        event_id as rupture_id,
        person_id,
        'service_interruption' as rupture_type,
        event_date as rupture_start,
        detected_date,
        end_date as repaired_date
    from events
    where event_type = 'service_interruption'
),

discharges as (
    select
        event_id,
        person_id,
        end_date as discharge_date
    from events
    where event_type = 'hospital_admission' and not is_planned and end_date is not null
    union all
    select
        event_id,
        person_id,
        visit_date as discharge_date
    from fct_emergency_visits
    where not followed_by_admission
),

providers as (
    select
        episodes.person_id,
        interventions.intervention_date
    from stg_interventions as interventions
    inner join stg_episodes as episodes on interventions.episode_id = episodes.episode_id
    where interventions.intervention_type = 'provider_found'
),

discharge_help as (
    select
        discharges.event_id,
        discharges.person_id,
        discharges.discharge_date,
        max(case when before_plans.hours_delivered > 0 then 1 else 0 end) as had_help_before,
        min(providers.intervention_date) as provider_date
    from discharges
    left join plans as before_plans
        on
            discharges.person_id = before_plans.person_id
            and before_plans.month_start = cast(date_trunc('month', discharges.discharge_date) - interval '1' month as date)
    left join providers
        on discharges.person_id = providers.person_id and providers.intervention_date >= discharges.discharge_date
    group by discharges.event_id, discharges.person_id, discharges.discharge_date
),

unsupported as (
    select
        discharge_help.event_id as rupture_id,
        discharge_help.person_id,
        'discharge_without_support' as rupture_type,
        discharge_help.discharge_date as rupture_start,
        cast(null as date) as detected_date,
        discharge_help.provider_date as repaired_date
    from discharge_help
    cross join parameters
    where
        discharge_help.had_help_before = 0
        and (
            discharge_help.provider_date is null
            or date_diff('day', discharge_help.discharge_date, discharge_help.provider_date)
            > parameters.discharge_support_days
        )
),

lapses as (
    select
        lapsed.event_id as rupture_id,
        lapsed.person_id,
        'benefit_lapse' as rupture_type,
        lapsed.event_date as rupture_start,
        cast(null as date) as detected_date,
        min(granted.event_date) as repaired_date
    from events as lapsed
    left join events as granted
        on
            lapsed.person_id = granted.person_id
            and granted.event_type = 'benefit_granted'
            and granted.benefit is not distinct from lapsed.benefit
            and granted.event_date > lapsed.event_date
    where lapsed.event_type = 'benefit_lapsed'
    group by lapsed.event_id, lapsed.person_id, lapsed.event_date
),

short_months as (
    select
        plans.person_id,
        plans.month_start,
        year(plans.month_start) * 12 + month(plans.month_start) as month_number,
        row_number() over (partition by plans.person_id order by plans.month_start) as short_rank
    from plans
    cross join parameters
    where plans.hours_granted > 0 and plans.hours_delivered < parameters.delivery_shortfall_share * plans.hours_granted
),

shortfall_runs as (
    select
        person_id,
        min(month_start) as first_month,
        max(month_start) as last_month
    from short_months
    group by person_id, month_number - short_rank
),

shortfalls as (
    select
        shortfall_runs.person_id || ':' || cast(shortfall_runs.first_month as varchar) as rupture_id,
        shortfall_runs.person_id,
        'delivery_shortfall' as rupture_type,
        shortfall_runs.first_month as rupture_start,
        cast(null as date) as detected_date,
        next_plans.month_start as repaired_date
    from shortfall_runs
    left join plans as next_plans
        on
            shortfall_runs.person_id = next_plans.person_id
            and next_plans.month_start = cast(shortfall_runs.last_month + interval '1' month as date)
),

ruptures as (
    select * from interruptions
    union all
    select * from unsupported
    union all
    select * from lapses
    union all
    select * from shortfalls
)

select
    ruptures.rupture_id,
    ruptures.rupture_type,
    periods.episode_id,
    periods.person_id,
    periods.agency_id,
    periods.cohort,
    periods.period,
    dimensions.agency_model,
    dimensions.departement,
    dimensions.gir_band,
    dimensions.age_band,
    ruptures.rupture_start,
    ruptures.detected_date,
    ruptures.repaired_date,
    ruptures.repaired_date is null or ruptures.repaired_date > dimensions.follow_up_end as is_open,
    date_diff(
        'day', ruptures.rupture_start,
        case
            when ruptures.repaired_date is null or ruptures.repaired_date > dimensions.follow_up_end
                then dimensions.follow_up_end
            else ruptures.repaired_date
        end
    ) as days_without_help,
    date_diff('day', ruptures.rupture_start, ruptures.detected_date) as days_to_detection,
    date_diff('day', coalesce(ruptures.detected_date, ruptures.rupture_start), ruptures.repaired_date)
        as days_to_repair,
    coalesce(
        date_diff('day', coalesce(ruptures.detected_date, ruptures.rupture_start), ruptures.repaired_date)
        <= parameters.repair_target_days,
        false
    ) as repaired_within_target
from ruptures
cross join parameters
inner join int_person_time as periods
    on
        ruptures.person_id = periods.person_id
        and (
            ruptures.rupture_start between periods.period_start and periods.period_end
            -- Still going when the before window opens: counted in the before period.
            or (
                periods.period = 'before'
                and ruptures.rupture_start < periods.period_start
                and (ruptures.repaired_date is null or ruptures.repaired_date >= periods.period_start)
            )
        )
inner join int_episode_dimensions as dimensions on periods.episode_id = dimensions.episode_id
