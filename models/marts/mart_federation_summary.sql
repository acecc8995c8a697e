-- Who the federation follows: agencies, persons (across agencies: person_key) and episodes by
-- agency model and cohort.
with episodes as (
    select * from stg_episodes
),

agencies as (
    select * from stg_agencies
),

cutoff as (
    select data_cutoff from int_data_cutoff
)

select
    agencies.agency_model,
    episodes.cohort,
    count(distinct agencies.agency_id) as agencies,
    count(distinct coalesce(persons.person_key, episodes.person_id)) as persons,
    count(*) as episodes,
    cast(sum(case when episodes.end_date is null or episodes.end_date > cutoff.data_cutoff then 1 else 0 end)
        as bigint) as open_episodes
from episodes
inner join agencies on episodes.agency_id = agencies.agency_id
left join stg_persons as persons on episodes.person_id = persons.person_id
cross join cutoff
group by agencies.agency_model, episodes.cohort
