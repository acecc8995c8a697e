"""One Dagster asset per SQL model under ``models/``, its dependencies read from its SQL."""

import dagster as dg

from pipelines import warehouse
from pipelines.assets.ingestion import RUN_PARAMETERS_TABLE, raw_asset_keys
from pipelines.assets.reference import REFERENCE_TABLES
from pipelines.ingest.load import LANDING_FILES_TABLE
from pipelines.resources import ParcoursResource
from pipelines.settings import project_root
from pipelines.sql_models import SqlModel, discover_models
from quality.report import QUALITY_RESULTS_TABLE

WRITTEN_WITH = {QUALITY_RESULTS_TABLE: LANDING_FILES_TABLE}
"""Tables an asset writes beside its own: a model reading one depends on that asset."""


def source_tables() -> set[str]:
    return set(raw_asset_keys()) | {RUN_PARAMETERS_TABLE} | set(REFERENCE_TABLES) | set(WRITTEN_WITH)


def model_asset(model: SqlModel) -> dg.AssetsDefinition:
    @dg.asset(
        name=model.name,
        deps=sorted({WRITTEN_WITH.get(d, d) for d in model.depends_on}),
        group_name=model.layer,
        kinds={"duckdb", "sql"},
        description=model.description or None,
        metadata={"sql_path": str(model.path.relative_to(project_root()))},
    )
    def _run(context: dg.AssetExecutionContext, parcours: ParcoursResource) -> dg.MaterializeResult:
        with warehouse.connect(parcours.settings().warehouse_path) as con:
            rows = warehouse.run_model(con, model.name, model.sql)
        context.log.info(f"{model.name}: {rows:,} rows")
        return dg.MaterializeResult(metadata={"dagster/row_count": rows})

    return _run


def sql_models() -> list[SqlModel]:
    return discover_models(project_root() / "models", source_tables())


def model_assets() -> list[dg.AssetsDefinition]:
    return [model_asset(m) for m in sql_models()]
