-- One row per episode: its person's prior use of care, counted in windows before the index date (the
-- episode's start) over the person's events at every agency, each event once (int_events): unplanned
-- hospital admissions, emergency visits and falls, 1 to 730 days before. The studies' prior-use
-- covariates; the windows are pipelines.impact.spec.PRIOR_USE_COUNTS (tests/test_studies.py checks
-- that each of its counts is here, as written). Counted once here for every study rather than in each
-- study's dataset query: there, beside the study base's joins, it needed more than 6 GB at
-- 10,000,000 persons. Episodes without any such event have no row (the studies count them 0).
with prior_events as (
    select
        episodes.episode_id,
        case events.event_type
            when 'hospital_admission' then 'unplanned_admissions'
            when 'emergency_visit' then 'emergency_visits'
            else 'falls'
        end as event,
        date_diff('day', events.event_date, episodes.start_date) as days_before
    from int_events as events
    inner join fct_episodes as episodes on events.person_key = episodes.person_key
    where
        (
            (events.event_type = 'hospital_admission' and not events.is_planned)
            or events.event_type in ('emergency_visit', 'fall')
        )
        and events.event_date < episodes.start_date
        and date_diff('day', events.event_date, episodes.start_date) <= 730
)

select
    episode_id,
    count(*) filter (where event = 'unplanned_admissions' and days_before between 1 and 30) as unplanned_admissions_0_1m,
    count(*) filter (where event = 'unplanned_admissions' and days_before between 31 and 91) as unplanned_admissions_1_3m,
    count(*) filter (where event = 'unplanned_admissions' and days_before between 92 and 183) as unplanned_admissions_3_6m,
    count(*) filter (where event = 'unplanned_admissions' and days_before between 184 and 365) as unplanned_admissions_6_12m,
    count(*) filter (where event = 'unplanned_admissions' and days_before between 366 and 730) as unplanned_admissions_12_24m,
    count(*) filter (where event = 'emergency_visits' and days_before between 1 and 30) as emergency_visits_0_1m,
    count(*) filter (where event = 'emergency_visits' and days_before between 31 and 91) as emergency_visits_1_3m,
    count(*) filter (where event = 'emergency_visits' and days_before between 92 and 183) as emergency_visits_3_6m,
    count(*) filter (where event = 'emergency_visits' and days_before between 184 and 365) as emergency_visits_6_12m,
    count(*) filter (where event = 'emergency_visits' and days_before between 366 and 730) as emergency_visits_12_24m,
    count(*) filter (where event = 'falls' and days_before between 1 and 30) as falls_0_1m,
    count(*) filter (where event = 'falls' and days_before between 31 and 91) as falls_1_3m,
    count(*) filter (where event = 'falls' and days_before between 92 and 183) as falls_3_6m,
    count(*) filter (where event = 'falls' and days_before between 184 and 365) as falls_6_12m,
    count(*) filter (where event = 'falls' and days_before between 366 and 730) as falls_12_24m,
    count(*) filter (where event = 'unplanned_admissions' and days_before between 1 and 365) as prior_unplanned_admissions,
    count(*) filter (where event = 'emergency_visits' and days_before between 1 and 365) as prior_emergency_visits
from prior_events
group by episode_id
