"""The Dagster code location: ``dagster dev`` from the repository root loads this module."""

from __future__ import annotations

import dagster as dg

from pipelines.assets import all_assets
from pipelines.resources import ParcoursResource
from pipelines.sensors import EVERYTHING_JOB, landing_folder_sensor

__all__ = ["all_assets", "build_definitions", "defs"]


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
