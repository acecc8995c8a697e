-- The contract suites' latest outcome per expectation: counts and shares only (the suites are
-- run with no unexpected value listed), served to analysts only. element_count is the rows
-- validated: a seeded sample when the table holds more than table_rows (quality/report.py).
select
    entity,
    category,
    expectation,
    "column" as column_name,
    success,
    element_count,
    table_rows,
    unexpected_count,
    unexpected_percent,
    checked_at
from quality_results
