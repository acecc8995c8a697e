-- The outcome thresholds as one row (data/reference/outcome_parameters.csv).
with parameters as (
    select * from ref_outcome_parameters
)

select
    max(case when name = 'readmission_window_days' then value end) as readmission_window_days,
    max(case when name = 'discharge_support_days' then value end) as discharge_support_days,
    max(case when name = 'delivery_shortfall_share' then value end) as delivery_shortfall_share,
    max(case when name = 'repair_target_days' then value end) as repair_target_days,
    max(case when name = 'ed_admission_days' then value end) as ed_admission_days,
    max(case when name = 'assessment_window_days' then value end) as assessment_window_days,
    max(case when name = 'history_days' then value end) as history_days
from parameters
