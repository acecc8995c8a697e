-- Persons helped or compared: pseudonymised attributes at intake. person_key identifies the
-- person across the federation: their linkage pseudonym when their agency sends one (the same
-- for the same person at every agency), else their agency's pseudonym.
with source as (
    select * from raw_persons
)

select
    person_id,
    agency_id,
    birth_year,
    sex,
    departement,
    lives_alone,
    main_conditions,
    gir_at_intake,
    benefit,
    linkage_id,
    coalesce(linkage_id, person_id) as person_key
from source
