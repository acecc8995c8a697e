-- Prior-use events of each episode's person at every agency (each event once), up to $days before.
-- Reads _prior_episodes (episode_id, person_key, start_date), registered by the caller.
select
    episodes.episode_id,
    case events.event_type
        when 'hospital_admission' then 'unplanned_admissions'
        when 'emergency_visit' then 'emergency_visits'
        else 'falls'
    end as event,
    date_diff('day', events.event_date, episodes.start_date) as days_before
from int_events as events
inner join _prior_episodes as episodes on events.person_key = episodes.person_key
where (
        (events.event_type = 'hospital_admission' and not events.is_planned)
        or events.event_type in ('emergency_visit', 'fall')
    )
    and events.event_date < episodes.start_date
    and date_diff('day', events.event_date, episodes.start_date) <= $days
