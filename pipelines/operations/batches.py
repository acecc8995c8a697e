"""Ingestion batches: which landing files each ingestion took, in which order, on which day, kept.

Ingestion depends on its history: a re-sent period replaces an earlier file, and a row repeated in a later
period is quarantined as a duplicate of the one stored first. To rebuild a release years later, the files
are replayed batch by batch, in the order they came, with the day each batch was ingested (the checks
of future dates use it). Each batch is recorded in the working database (``raw_ingestion_batches``), and
each file it took is copied once into the kept inputs, a content-addressed folder
(``<data dir>/inputs/<agency>/<sha256><suffix>``): the landing folder may be emptied after a quarter, the
kept inputs stay as long as a release needs them. They are landing data (pseudonymised by the agencies,
not yet re-keyed) and stay in the analysts' zone, like the landing folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from pipelines import warehouse
from pipelines.ingest.readers import IDENTIFIER_NAMED, NOT_REGULAR, UNHASHABLE, LandingFile
from pipelines.ingest.service import FileReport

BATCHES_TABLE = "raw_ingestion_batches"
BATCH_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "batch": pl.Int64,
    "run_id": pl.String,
    "partitions": pl.String,
    "ingestion_day": pl.Date,
    "recorded_at": pl.Datetime("us"),
    "position": pl.Int64,
    "agency_folder": pl.String,
    "relative_path": pl.String,
    "sha256": pl.String,
    "status": pl.String,
    "kept": pl.Boolean,
}
NOT_KEPT = frozenset({IDENTIFIER_NAMED, NOT_REGULAR, UNHASHABLE})
"""Files refused before reading whose bytes are not kept: a name holding an identifier (the name is the
identifier), a link or a special file (never followed), a file that could not be read."""


def inputs_dir(data_dir: Path) -> Path:
    return data_dir / "inputs"


def kept_path(inputs: Path, agency_folder: str, sha256: str, relative_path: str) -> Path:
    """Where a landing file's bytes are kept under ``inputs``: by agency and content hash (the identity
    ingestion uses), with the file's suffix (its format)."""
    suffix = Path(relative_path).suffix.lower()
    return inputs / (agency_folder or "_") / f"{sha256}{suffix}"


def keep_inputs(data_dir: Path, files: Sequence[LandingFile]) -> list[bool]:
    """Copy each file's bytes into the kept inputs once (a temporary name, then a rename: never half a file)."""
    kept = []
    for file in files:
        if file.format in NOT_KEPT:
            kept.append(False)
            continue
        target = kept_path(inputs_dir(data_dir), file.agency_folder, file.sha256, file.relative_path)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            staged = target.with_name(f".{target.name}.tmp")
            shutil.copyfile(file.path, staged)
            staged.replace(target)
            target.chmod(0o444)
        kept.append(True)
    return kept


def record_batch(
    con: Any,
    run_id: str,
    partitions: Sequence[str],
    today: date,
    files: Sequence[LandingFile],
    reports: Sequence[FileReport],
    kept: Sequence[bool],
) -> int:
    """Append one batch (the files of one ingestion, in the order given) and return its number."""
    if not warehouse.table_exists(con, BATCHES_TABLE):
        warehouse.replace_table(con, BATCHES_TABLE, pl.DataFrame(schema=BATCH_SCHEMA))
    batch = int(warehouse.scalar(con, f"select coalesce(max(batch), 0) + 1 from {BATCHES_TABLE}"))
    if not files:
        return batch
    status = {r.file: r.status for r in reports}
    now = datetime.now(UTC).replace(tzinfo=None)
    frame = pl.DataFrame(
        {
            "batch": [batch] * len(files),
            "run_id": [run_id] * len(files),
            "partitions": [",".join(partitions)] * len(files),
            "ingestion_day": [today] * len(files),
            "recorded_at": [now] * len(files),
            "position": list(range(1, len(files) + 1)),
            "agency_folder": [f.agency_folder for f in files],
            "relative_path": [f.relative_path for f in files],
            "sha256": [f.sha256 for f in files],
            "status": [status.get(f.relative_path, "") for f in files],
            "kept": list(kept),
        },
        schema=BATCH_SCHEMA,
    )
    warehouse.insert_frame(con, BATCHES_TABLE, frame)
    return batch


def batches(con: Any) -> pl.DataFrame:
    if not warehouse.table_exists(con, BATCHES_TABLE):
        return pl.DataFrame(schema=BATCH_SCHEMA)
    return warehouse.query(con, f"select * from {BATCHES_TABLE} order by batch, position")
