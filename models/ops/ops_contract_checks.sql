-- The contract suites' latest outcome per expectation: counts and shares only (the suites are
-- run with no unexpected value listed), served to analysts only.
select
    entity,
    category,
    expectation,
    "column" as column_name,
    success,
    element_count,
    unexpected_count,
    unexpected_percent,
    checked_at
from quality_results
