-- Persons helped or compared: pseudonymised attributes at intake.
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
    benefit
from source
