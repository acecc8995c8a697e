"""What arrived, for the analysts' operations page between two releases: the ledger, the quarantine counted
by reason, the ingestion batches, in a small file published after every ingestion.

The dashboards never open the working database (one writer; readers would block it or be blocked), and
a release is published once a quarter; so each ingestion (a partition run, or ``raw_tables``) copies what
the operations page needs into ``parcours_operations.duckdb`` beside the serving snapshot, swapped in
whole. Counts only: quarantined rows are counted by agency, file, period, entity, reason and column,
never copied; it stays in the analysts' zone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines import warehouse
from pipelines.ingest.load import LANDING_FILES_TABLE, QUARANTINE_TABLE
from pipelines.operations.batches import BATCHES_TABLE, batches

OPERATIONS_FILE = "parcours_operations.duckdb"
LANDING = "landing_files"
QUARANTINE = "quarantine_reasons"
BATCHES = "ingestion_batches"
QUARANTINE_SQL = f"""
select q._agency_folder as agency_folder, l.period, q._source_file as source_file, q.entity, q.reason,
       q.column_name, count(*) as rows_quarantined
from {QUARANTINE_TABLE} q
left join (select distinct agency_folder, sha256, period from {LANDING_FILES_TABLE}) l
  on l.agency_folder = q._agency_folder and l.sha256 = q._source_sha256
group by all
"""


def operations_path(serving: Path) -> Path:
    return serving.with_name(OPERATIONS_FILE)


def publish_operations(con: Any, serving: Path, metadata: dict[str, str]) -> Path:
    """Write the operations file from the working database and swap it in."""
    frames = {BATCHES: batches(con)}
    if warehouse.table_exists(con, LANDING_FILES_TABLE):
        frames[LANDING] = warehouse.query(con, f"select * from {LANDING_FILES_TABLE}")
    if warehouse.table_exists(con, QUARANTINE_TABLE) and warehouse.table_exists(con, LANDING_FILES_TABLE):
        frames[QUARANTINE] = warehouse.query(con, QUARANTINE_SQL)
    target = operations_path(serving)
    warehouse.swap_in(warehouse.write_snapshot(target, frames, metadata), target)
    return target


__all__ = ["BATCHES_TABLE", "operations_path", "publish_operations"]
