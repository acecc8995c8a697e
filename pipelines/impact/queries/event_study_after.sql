-- Unplanned admissions after each episode's index date, by month relative to it (0 to 11).
-- Reads _event_episodes (episode_id, person_key, start_date), registered by the caller. Parameter: $month_days.
select episodes.episode_id, floor(date_diff('day', episodes.start_date, events.event_date) / $month_days)
    as relative_month
from int_events as events
inner join _event_episodes as episodes on events.person_key = episodes.person_key
where events.event_type = 'hospital_admission' and not events.is_planned
    and events.event_date >= episodes.start_date
    and date_diff('day', episodes.start_date, events.event_date) < 12 * $month_days
