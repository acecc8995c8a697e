"""Watch the landing folder and start a run when agency files arrive or change."""

import hashlib

import dagster as dg

from pipelines.ingest.readers import FORMATS
from pipelines.resources import ParcoursResource

EVERYTHING_JOB = "everything"


def landing_fingerprint(parcours: ParcoursResource) -> str:
    """A digest of every landing file's path, size and modification time (no content read)."""
    landing = parcours.settings().landing_dir
    if not landing.is_dir():
        return ""
    entries = sorted(
        f"{p.relative_to(landing).as_posix()}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
        for p in landing.rglob("*")
        if p.is_file() and p.suffix.lower() in FORMATS
    )
    return hashlib.sha256("\n".join(entries).encode()).hexdigest() if entries else ""


@dg.sensor(
    job_name=EVERYTHING_JOB,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts the whole pipeline when files are added to, changed in or removed from the landing folder.",
)
def landing_folder_sensor(context: dg.SensorEvaluationContext, parcours: ParcoursResource) -> dg.SensorResult:
    fingerprint = landing_fingerprint(parcours)
    if not fingerprint or fingerprint == context.cursor:
        return dg.SensorResult(skip_reason=dg.SkipReason("no new or changed files in the landing folder"))
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=fingerprint)], cursor=fingerprint)
