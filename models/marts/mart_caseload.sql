-- Caseload by agency and month: active care-managed episodes per full-time care manager.
select
    agency_id,
    agency_model,
    month_start,
    active_episodes,
    fte,
    episodes_per_fte
from fct_caseload_months
