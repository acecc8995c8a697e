"""The Dagster code location: ``dagster dev`` from the repository root loads this module.

Two jobs, both tagged as writers of the working database (one run at a time: ``deploy/dagster.yaml``):
``ingest_landing`` ingests one partition (agency and export period), started by the landing sensor for
new or changed files; ``publish_release`` runs the rest (checks of the raw zone, models, studies) and
publishes a release, started by the quarterly schedule or by an analyst.
"""

from __future__ import annotations

import dagster as dg

from pipelines.assets import all_assets
from pipelines.assets.ingestion import AGENCY_EXPORTS, agency_exports
from pipelines.resources import ParcoursResource
from pipelines.schedules import audit_log_retention, audit_retention_schedule, quarterly_release
from pipelines.sensors import INGEST_JOB, PUBLISH_JOB, landing_folder_sensor
from pipelines.writer_lock import WRITER_TAG

__all__ = ["all_assets", "build_definitions", "defs"]


def build_definitions() -> dg.Definitions:
    writer = {WRITER_TAG: "warehouse"}
    return dg.Definitions(
        assets=[agency_exports, *all_assets()],
        jobs=[
            dg.define_asset_job(INGEST_JOB, selection=[AGENCY_EXPORTS], tags=writer),
            dg.define_asset_job(
                PUBLISH_JOB, selection=dg.AssetSelection.all() - dg.AssetSelection.assets(AGENCY_EXPORTS), tags=writer
            ),
            audit_log_retention,
        ],
        sensors=[landing_folder_sensor],
        schedules=[quarterly_release, audit_retention_schedule],
        resources={"parcours": ParcoursResource()},
        # Each multiprocess step costs seconds here; the models are small and sequential.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
