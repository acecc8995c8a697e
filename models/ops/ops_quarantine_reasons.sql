-- Quarantined rows counted by agency, file, entity, reason and column: counts only, the raw
-- lines stay in the warehouse (served to analysts only).
select
    _agency_folder as agency_folder,
    _source_file as source_file,
    _source_sha256 as sha256,
    entity,
    reason,
    column_name,
    count(*) as rows_quarantined
from raw_quarantine
group by _agency_folder, _source_file, _source_sha256, entity, reason, column_name
