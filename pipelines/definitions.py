"""The Dagster code location: ``dagster dev`` from the repository root loads this module."""

from __future__ import annotations

import dagster as dg

from pipelines.assets.ingestion import quality_report, raw_tables, run_parameters
from pipelines.assets.models import model_assets
from pipelines.assets.reference import reference_assets
from pipelines.assets.serving import serving_snapshot
from pipelines.assets.studies import study_assets
from pipelines.resources import ParcoursResource
from pipelines.sensors import EVERYTHING_JOB, landing_folder_sensor


def all_assets() -> list[dg.AssetsDefinition]:
    return [
        raw_tables,
        quality_report,
        run_parameters,
        *reference_assets(),
        *model_assets(),
        *study_assets(),
        serving_snapshot,
    ]


def build_definitions() -> dg.Definitions:
    assets = all_assets()
    return dg.Definitions(
        assets=assets,
        jobs=[dg.define_asset_job(EVERYTHING_JOB, selection=dg.AssetSelection.all())],
        sensors=[landing_folder_sensor],
        resources={"parcours": ParcoursResource()},
        # Each multiprocess step costs seconds here; the models are small and sequential.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
