-- Follow-ups: care-managed or comparison, with their index date (start_date).
with source as (
    select * from raw_episodes
)

select
    episode_id,
    person_id,
    agency_id,
    care_manager_id,
    cohort,
    referral_date,
    first_contact_date,
    plan_date,
    start_date,
    end_date,
    end_reason,
    referral_source,
    payer,
    entry_situation
from source
