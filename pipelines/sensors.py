"""Watch the landing folder and ingest, partition by partition, the files that are new or changed.

The decision is made against the ledger, not against what the sensor saw last: a file whose content
(agency folder and SHA-256) the ledger knows was processed, whoever processed it, so starting the UI on
an up-to-date warehouse starts nothing. Each partition with an unknown file gets one run of the
ingestion job, keyed by the partition and its unknown files' hashes, so that the same files never start
two runs. The sensor only ingests: publishing a release is the quarterly schedule's, or an analyst's,
decision (``pipelines.schedules``), and never happens under running dashboards by surprise.

Files are hashed only when their size or modification time changed since the sensor last saw them (the
cursor keeps each path's size, time and hash).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import dagster as dg

from pipelines import warehouse
from pipelines.ingest.load import LANDING_FILES_TABLE, known_files
from pipelines.ingest.readers import FORMATS, UNSUPPORTED, LandingFile, describe_file
from pipelines.partitions import LANDING_PARTITIONS, files_by_partition
from pipelines.resources import ParcoursResource

INGEST_JOB = "ingest_landing"
PUBLISH_JOB = "publish_release"


def plan_runs(files: Iterable[LandingFile], known: set[tuple[str, str]]) -> dict[str, str]:
    """Partition -> run key, for each partition holding a file the ledger does not know. The key digests the
    partition and its unknown files' hashes: a later change of the same partition gets a new run."""
    plans = {}
    for key, members in files_by_partition(files).items():
        unknown = sorted(f.sha256 for f in members if (f.agency_folder, f.sha256) not in known)
        if unknown:
            plans[key] = hashlib.sha256("\n".join([key, *unknown]).encode()).hexdigest()[:32]
    return plans


def scan_landing(
    landing: object, cache: Mapping[str, list[object]]
) -> tuple[list[LandingFile], dict[str, list[object]]]:
    """The landing files, hashed only when new or changed since ``cache`` (path digest -> [size, mtime, sha256,
    the path as ingestion reports it]). Paths are keyed by their digest, and a name that holds an identifier
    is kept masked, as the ledger keeps it."""
    root = Path(str(landing))
    if not root.is_dir():
        return [], {}
    files: list[LandingFile] = []
    seen: dict[str, list[object]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        relative = path.relative_to(root)
        if len(relative.parts) < 2 or any(part.startswith(".") for part in relative.parts):
            continue
        stat = path.stat()
        name = hashlib.sha256(relative.as_posix().encode()).hexdigest()[:32]
        before = cache.get(name)
        if before and len(before) == 4 and before[:2] == [stat.st_size, stat.st_mtime_ns]:
            fmt = FORMATS.get(path.suffix.lower(), UNSUPPORTED)
            described = LandingFile(path, str(before[3]), relative.parts[0], fmt, str(before[2]), stat.st_size)
        else:
            found = describe_file(path, root, relative.parts[0])
            if found is None:
                continue
            described = found
        # The path as ingestion reports it (masked when the name holds an identifier): its period is the key's.
        seen[name] = [stat.st_size, stat.st_mtime_ns, described.sha256, described.relative_path]
        files.append(described)
    return files, seen


@dg.sensor(
    job_name=INGEST_JOB,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Ingests, one partition (agency and export period) at a time, the landing files the ledger does "
    "not know yet. Never publishes: the quarterly schedule or an analyst does.",
)
def landing_folder_sensor(context: dg.SensorEvaluationContext, parcours: ParcoursResource) -> dg.SensorResult:
    settings = parcours.settings()
    cache = json.loads(context.cursor) if context.cursor else {}
    files, seen = scan_landing(settings.landing_dir, cache)
    cursor = json.dumps(seen, sort_keys=True)
    known: set[tuple[str, str]] = set()
    if settings.warehouse_path.exists():
        try:
            with warehouse.connect(settings.warehouse_path, read_only=True) as con:
                if warehouse.table_exists(con, LANDING_FILES_TABLE):
                    known = known_files(con)
        except warehouse.Error:
            # A run is writing (DuckDB lets no other process open the file meanwhile): look again next time.
            return dg.SensorResult(skip_reason="the working database is being written; looking again later")
    plans = plan_runs(files, known)
    if not plans:
        return dg.SensorResult(skip_reason="no new or changed files in the landing folder", cursor=cursor)
    existing = set(context.instance.get_dynamic_partitions(LANDING_PARTITIONS.name or "landing"))
    new = sorted(set(plans) - existing)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=run_key, partition_key=key) for key, run_key in plans.items()],
        dynamic_partitions_requests=[LANDING_PARTITIONS.build_add_request(new)] if new else [],
        cursor=cursor,
    )
