-- Ruptures in the care pathway (fct_ruptures_by_person: how each kind is found and repaired), one
-- row per rupture and episode-period, placed in an episode's before or after period by their start (one
-- that started earlier and was still open when the before window opened counts in the before
-- period).
-- Days without help run from the start to the repair (or the end of follow-up); time to
-- repair runs from detection when it is known, else from the start.
-- Each episode sees its person's ruptures; is_attributed marks the one episode-period that counts a
-- rupture in totals: the owner (int_attributed_time) of its first day within the person's windows
-- (the earliest first day of that rupture and period over the episodes that see it).
with ruptures as (
    select * from fct_ruptures_by_person
),

parameters as (
    select * from int_outcome_parameters
),

placed as (
    select
        ruptures.*,
        periods.episode_id,
        periods.period,
        -- The rupture's first day within this window: its start, or the window's first day
        -- when it was still open then.
        greatest(ruptures.rupture_start, periods.period_start) as first_day_in_window
    from ruptures
    inner join int_person_time as periods
        on
            ruptures.person_key = periods.person_key
            and (
                ruptures.rupture_start between periods.period_start and periods.period_end
                -- Still going when the before window opens: counted in the before period.
                or (
                    periods.period = 'before'
                    and ruptures.rupture_start < periods.period_start
                    and (ruptures.repaired_date is null or ruptures.repaired_date >= periods.period_start)
                )
            )
),

attributed as (
    select
        *,
        -- A window rather than a grouping joined back: one pass over the placed rows, where the
        -- join held them twice and failed at a tenth of the memory.
        min(first_day_in_window) over (partition by rupture_type, rupture_id, period) as attribution_day
    from placed
)

select
    placed.rupture_id,
    placed.rupture_type,
    placed.episode_id,
    dimensions.person_id,
    dimensions.person_key,
    dimensions.agency_id,
    dimensions.cohort,
    placed.period,
    dimensions.agency_model,
    dimensions.departement,
    dimensions.gir_band,
    dimensions.age_band,
    placed.rupture_start,
    placed.detected_date,
    placed.repaired_date,
    placed.repaired_date is null or placed.repaired_date > dimensions.follow_up_end as is_open,
    date_diff(
        'day', placed.rupture_start,
        case
            when placed.repaired_date is null or placed.repaired_date > dimensions.follow_up_end
                then dimensions.follow_up_end
            else placed.repaired_date
        end
    ) as days_without_help,
    date_diff('day', placed.rupture_start, placed.detected_date) as days_to_detection,
    date_diff('day', coalesce(placed.detected_date, placed.rupture_start), placed.repaired_date)
        as days_to_repair,
    coalesce(
        date_diff('day', coalesce(placed.detected_date, placed.rupture_start), placed.repaired_date)
        <= parameters.repair_target_days,
        false
    ) as repaired_within_target,
    segments.episode_id is not null as is_attributed
from attributed as placed
cross join parameters
inner join int_episode_dimensions as dimensions on placed.episode_id = dimensions.episode_id
left join int_attributed_time as segments
    on
        placed.episode_id = segments.episode_id
        and placed.period = segments.period
        and placed.attribution_day between segments.segment_start and segments.segment_end
