"""The Dagster code location: ``dagster dev`` from the repository root loads this module."""

from __future__ import annotations

import dagster as dg

from pipelines.assets.ingestion import raw_tables, run_parameters
from pipelines.assets.models import model_assets
from pipelines.assets.serving import serving_snapshot
from pipelines.resources import ParcoursResource


def all_assets() -> list[dg.AssetsDefinition]:
    return [raw_tables, run_parameters, *model_assets(), serving_snapshot]


def build_definitions() -> dg.Definitions:
    assets = all_assets()
    return dg.Definitions(
        assets=assets,
        jobs=[dg.define_asset_job("everything", selection=dg.AssetSelection.all())],
        resources={"parcours": ParcoursResource()},
        # Each multiprocess step costs seconds here; the models are small and sequential.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
