-- Ruptures in the care pathway, one row each, by person across the federation (person_key):
--   service_interruption: an interruption event (start, detection, restoration);
--   discharge_without_support: a discharge home after an unplanned stay, or an emergency
--     visit not followed by an admission, of someone with no home help delivered the month
--     before, with no provider found within discharge_support_days (repaired when one is);
--   benefit_lapse: a lapsed benefit (repaired when the same benefit is granted again);
--   delivery_shortfall: consecutive months with hours delivered below
--     delivery_shortfall_share of hours granted (repaired the first month back above it).
-- Events once each (int_events), a person's hours per month, each funder's once
-- (int_service_plans), providers found by any agency. fct_ruptures places them in episodes'
-- periods: a model of its own, stored, so that the joins finding ruptures and the joins placing
-- them do not hold their memory at the same time (one query, the two fail at a tenth of the
-- memory for a tenth of the data; apart, each fits: docs/benchmarks-notes.md, 2026-12-01).
-- Its import CTEs are read several times each: not materialized, so that DuckDB scans the stored
-- tables at each use instead of storing a copy of each first (11.3 to 6.1 s at 1,000,000 persons).
with events as not materialized (
    select * from int_events
),

parameters as not materialized (
    select * from int_outcome_parameters
),

plans as not materialized (
    select * from int_service_plans
),

interruptions as (
    select
        event_id as rupture_id,
        person_key,
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
        person_key,
        end_date as discharge_date
    from events
    where event_type = 'hospital_admission' and not is_planned and end_date is not null
    union all
    select distinct
        event_id,
        person_key,
        visit_date as discharge_date
    from fct_emergency_visits
    where not followed_by_admission
),

providers as (
    select
        episodes.person_key,
        interventions.intervention_date
    from stg_interventions as interventions
    inner join int_episode_dimensions as episodes on interventions.episode_id = episodes.episode_id
    where interventions.intervention_type = 'provider_found'
),

discharge_help as (
    select
        discharges.event_id,
        discharges.person_key,
        discharges.discharge_date,
        max(case when before_plans.hours_delivered > 0 then 1 else 0 end) as had_help_before,
        min(providers.intervention_date) as provider_date
    from discharges
    left join plans as before_plans
        on
            discharges.person_key = before_plans.person_key
            and before_plans.month_start = cast(date_trunc('month', discharges.discharge_date) - interval '1' month as date)
    left join providers
        on discharges.person_key = providers.person_key and providers.intervention_date >= discharges.discharge_date
    group by discharges.event_id, discharges.person_key, discharges.discharge_date
),

unsupported as (
    select
        discharge_help.event_id as rupture_id,
        discharge_help.person_key,
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
        lapsed.person_key,
        'benefit_lapse' as rupture_type,
        lapsed.event_date as rupture_start,
        cast(null as date) as detected_date,
        min(granted.event_date) as repaired_date
    from events as lapsed
    left join events as granted
        on
            lapsed.person_key = granted.person_key
            and granted.event_type = 'benefit_granted'
            and granted.benefit is not distinct from lapsed.benefit
            and granted.event_date > lapsed.event_date
    where lapsed.event_type = 'benefit_lapsed'
    group by lapsed.event_id, lapsed.person_key, lapsed.event_date
),

short_months as (
    select
        plans.person_key,
        plans.month_start,
        year(plans.month_start) * 12 + month(plans.month_start) as month_number,
        row_number() over (partition by plans.person_key order by plans.month_start) as short_rank
    from plans
    cross join parameters
    where plans.hours_granted > 0 and plans.hours_delivered < parameters.delivery_shortfall_share * plans.hours_granted
),

shortfall_runs as (
    select
        person_key,
        min(month_start) as first_month,
        max(month_start) as last_month
    from short_months
    group by person_key, month_number - short_rank
),

shortfalls as (
    select
        shortfall_runs.person_key || ':' || cast(shortfall_runs.first_month as varchar) as rupture_id,
        shortfall_runs.person_key,
        'delivery_shortfall' as rupture_type,
        shortfall_runs.first_month as rupture_start,
        cast(null as date) as detected_date,
        next_plans.month_start as repaired_date
    from shortfall_runs
    left join plans as next_plans
        on
            shortfall_runs.person_key = next_plans.person_key
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

select * from ruptures
