-- Person-time counted once, for federation totals and breakdowns. A person (person_key) with
-- overlapping episodes (two agencies at once, or care management starting during a comparison
-- follow-up) has each day of a period ('before' or 'after') owned by one episode: the
-- care-managed episode covering it if there is one (a person care-managed elsewhere is not a
-- comparison), else the comparison episode; among those, the one that started first, then the
-- smallest episode_id. Events and person-time of the day are counted under its owner only; the
-- facts flag them (is_attributed). Segments are the stretches between the person's window
-- boundaries, so each is covered by the same episodes throughout.
with windows as not materialized (
    select
        episode_id,
        person_key,
        cohort,
        start_date,
        period,
        period_start,
        period_end
    from int_person_time
),

boundaries as (
    select
        person_key,
        period,
        period_start as boundary
    from windows
    union
    select
        person_key,
        period,
        cast(period_end + interval '1' day as date) as boundary
    from windows
),

segments as (
    select
        person_key,
        period,
        boundary as segment_start,
        cast(lead(boundary) over (partition by person_key, period order by boundary) - interval '1' day as date)
            as segment_end
    from boundaries
),

owners as (
    select
        windows.episode_id,
        segments.person_key,
        segments.period,
        segments.segment_start,
        segments.segment_end,
        row_number() over (
            partition by segments.person_key, segments.period, segments.segment_start
            order by
                case when windows.cohort = 'care_managed' then 0 else 1 end,
                windows.start_date,
                windows.episode_id
        ) as priority
    from segments
    inner join windows
        on
            segments.person_key = windows.person_key
            and segments.period = windows.period
            and windows.period_start <= segments.segment_start
            and windows.period_end >= segments.segment_end
    where segments.segment_end is not null
)

select
    episode_id,
    person_key,
    period,
    segment_start,
    segment_end,
    date_diff('day', segment_start, segment_end) + 1 as person_days
from owners
where priority = 1
