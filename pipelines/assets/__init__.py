"""The pipeline's assets, thin wrappers over pure functions; ``all_assets`` lists them in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dagster as dg


def all_assets() -> list[dg.AssetsDefinition]:
    """Every asset of a run, for the code location (``pipelines.definitions``) and for ``parcours run``,
    which builds its own job without the code location's sensors and schedules."""
    from pipelines.assets.ingestion import quality_report, raw_tables, run_parameters
    from pipelines.assets.models import model_assets
    from pipelines.assets.reference import reference_assets
    from pipelines.assets.serving import serving_snapshot
    from pipelines.assets.studies import study_assets

    return [
        raw_tables,
        quality_report,
        run_parameters,
        *reference_assets(),
        *model_assets(),
        *study_assets(),
        serving_snapshot,
    ]
