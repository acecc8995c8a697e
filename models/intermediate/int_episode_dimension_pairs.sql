-- Each episode once per breakdown marts offer: the whole federation ('all'), its agency,
-- agency model, département, région (of the département), GIR band and age band. Marts
-- aggregate facts per episode first, then join here, so every breakdown is computed the same way.
with dimensions as not materialized (
    select * from int_episode_dimensions
)

select episode_id, cohort, 'all' as dimension, 'all' as dimension_value from dimensions
union all
select episode_id, cohort, 'agency' as dimension, agency_id as dimension_value from dimensions
union all
select episode_id, cohort, 'agency_model' as dimension, agency_model as dimension_value from dimensions
union all
select episode_id, cohort, 'departement' as dimension, departement as dimension_value from dimensions
union all
select episode_id, cohort, 'region' as dimension, region as dimension_value from dimensions
union all
select episode_id, cohort, 'gir_band' as dimension, gir_band as dimension_value from dimensions
union all
select episode_id, cohort, 'age_band' as dimension, age_band as dimension_value from dimensions
