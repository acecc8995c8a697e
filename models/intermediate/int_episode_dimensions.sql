-- One row per episode starting by the cut-off: its follow-up and every dimension marts break
-- outcomes down by (agency, agency model, département, GIR band, age band, cohort), and its
-- person across the federation (person_key).
with episodes as (
    select * from stg_episodes
),

persons as (
    select * from stg_persons
),

agencies as (
    select * from stg_agencies
),

cutoff as (
    select data_cutoff from int_data_cutoff
)

select
    episodes.episode_id,
    episodes.person_id,
    coalesce(persons.person_key, episodes.person_id) as person_key,
    episodes.agency_id,
    episodes.care_manager_id,
    coalesce(agencies.agency_model, 'unknown') as agency_model,
    coalesce(persons.departement, 'unknown') as departement,
    episodes.cohort,
    episodes.referral_date,
    episodes.first_contact_date,
    episodes.plan_date,
    episodes.start_date,
    episodes.end_date,
    episodes.end_reason,
    episodes.entry_situation,
    least(coalesce(episodes.end_date, cutoff.data_cutoff), cutoff.data_cutoff) as follow_up_end,
    episodes.end_date is null or episodes.end_date > cutoff.data_cutoff as is_open,
    persons.lives_alone,
    year(episodes.start_date) - persons.birth_year as age_at_start,
    case
        when persons.gir_at_intake in (1, 2) then 'GIR 1-2'
        when persons.gir_at_intake in (3, 4) then 'GIR 3-4'
        when persons.gir_at_intake in (5, 6) then 'GIR 5-6'
        else 'unknown'
    end as gir_band,
    case
        when persons.birth_year is null then 'unknown'
        when year(episodes.start_date) - persons.birth_year < 60 then 'under 60'
        when year(episodes.start_date) - persons.birth_year < 75 then '60-74'
        when year(episodes.start_date) - persons.birth_year < 85 then '75-84'
        when year(episodes.start_date) - persons.birth_year < 95 then '85-94'
        else '95 and over'
    end as age_band
from episodes
left join persons on episodes.person_id = persons.person_id
left join agencies on episodes.agency_id = agencies.agency_id
cross join cutoff
where episodes.start_date <= cutoff.data_cutoff
