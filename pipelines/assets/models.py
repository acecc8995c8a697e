"""One Dagster asset per SQL model under ``models/``, its dependencies read from its SQL.

All models are materialised by one subsettable step (as dbt integrations do): each asset keeps
its own dependencies, metadata and checks, and can be selected alone, but a whole run pays
Dagster's per-step cost (about half a second here) once instead of once per model, and holds
one warehouse connection for the lot.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from pipelines import warehouse
from pipelines.assets.ingestion import RUN_PARAMETERS_TABLE, raw_asset_keys
from pipelines.assets.model_checks import MODEL_CHECKS, check_result, check_spec
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


def model_spec(model: SqlModel) -> dg.AssetSpec:
    return dg.AssetSpec(
        model.name,
        deps=sorted({WRITTEN_WITH.get(d, d) for d in model.depends_on}),
        group_name=model.layer,
        kinds={"duckdb", "sql"},
        description=model.description or None,
        metadata={"sql_path": str(model.path.relative_to(project_root()))},
    )


def model_assets() -> list[dg.AssetsDefinition]:
    models = sql_models()
    checks = {(c.asset, c.name): c for c in MODEL_CHECKS}

    @dg.multi_asset(
        name="sql_models",
        specs=[model_spec(m) for m in models],
        check_specs=[check_spec(c) for c in MODEL_CHECKS],
        can_subset=True,
    )
    def _run(context: dg.AssetExecutionContext, parcours: ParcoursResource) -> Iterator[Any]:
        selected = {key.to_user_string() for key in context.selected_asset_keys}
        with warehouse.connect(parcours.settings().warehouse_path) as con:
            for model in models:  # in dependency order
                if model.name not in selected:
                    continue
                rows = warehouse.run_model(con, model.name, model.sql)
                context.log.info(f"{model.name}: {rows:,} rows")
                yield dg.MaterializeResult(asset_key=model.name, metadata={"dagster/row_count": rows})
            for key in sorted(context.selected_asset_check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name)):
                yield check_result(con, checks[(key.asset_key.to_user_string(), key.name)])

    return [_run]


def sql_models() -> list[SqlModel]:
    return discover_models(project_root() / "models", source_tables())
