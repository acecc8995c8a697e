-- Unplanned admissions per episode, diagnosis group and month before the index date (0: after it, in
-- the window). Reads _study_episodes (episode_id, person_key, start_date, window_days), registered by the caller.
-- Parameters: $month_days, $history_days.
select
    episodes.episode_id,
    coalesce(events.diagnosis_group, 'unknown') as diagnosis_group,
    case
        when events.event_date >= episodes.start_date then 0
        else cast(ceil(date_diff('day', events.event_date, episodes.start_date) / $month_days) as integer)
    end as month_before,
    count(*) as admissions
from int_events as events
inner join _study_episodes as episodes on events.person_key = episodes.person_key
where events.event_type = 'hospital_admission' and not events.is_planned
    and date_diff('day', events.event_date, episodes.start_date) <= $history_days
    and date_diff('day', episodes.start_date, events.event_date) < episodes.window_days
group by all
