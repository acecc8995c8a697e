-- Every agency file received, for the analysts' page: status and row counts, never a row's
-- content (served to analysts only).
select
    sha256,
    relative_path,
    agency_folder,
    entity,
    period,
    format,
    status,
    rows_in,
    rows_accepted,
    rows_quarantined,
    message,
    ingested_at,
    superseded_by
from raw_landing_files
