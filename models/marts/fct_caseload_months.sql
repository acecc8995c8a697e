-- Caseload per agency and month: the average number of care-managed episodes active during
-- the month (person-days over days in the month) per full-time-equivalent care manager.
with active as (
    select
        dimensions.agency_id,
        dimensions.agency_model,
        months.month_start,
        sum(months.person_days) as person_days
    from int_person_months as months
    inner join int_episode_dimensions as dimensions on months.episode_id = dimensions.episode_id
    where months.cohort = 'care_managed'
    group by dimensions.agency_id, dimensions.agency_model, months.month_start
),

staff as (
    select
        agency_id,
        sum(fte) as fte
    from stg_care_managers
    group by agency_id
)

select
    active.agency_id,
    active.agency_model,
    active.month_start,
    active.person_days
    / (date_diff('day', active.month_start, cast(active.month_start + interval '1' month as date))) as active_episodes,
    staff.fte,
    active.person_days
    / (date_diff('day', active.month_start, cast(active.month_start + interval '1' month as date)))
    / nullif(staff.fte, 0) as episodes_per_fte
from active
left join staff on active.agency_id = staff.agency_id
