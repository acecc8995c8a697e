"""One Dagster asset per SQL model under ``models/``, its dependencies read from its SQL.

All models are materialised by one subsettable step (as dbt integrations do): each asset keeps
its own dependencies, metadata and checks, and can be selected alone, but a whole run pays
Dagster's per-step cost (about half a second here) once instead of once per model, and holds
one warehouse connection for the lot. The selected models are replaced in one transaction: a
model that fails leaves every table as the previous run left it, never half a layer rebuilt.
Each model's row count goes into its materialisation (no log line per model: Dagster stores
every log line as an event, a few milliseconds each).
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from pipelines.assets.ingestion import RUN_PARAMETERS_TABLE, raw_asset_keys
from pipelines.assets.model_checks import MODEL_CHECKS, check_result, check_spec
from pipelines.assets.reference import REFERENCE_TABLES
from pipelines.engines import Engine, engine_errors, query_error
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
        kinds={"sql", "view" if model.is_view else "table"},
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
        with parcours.engine(sorted(source_tables())) as engine:
            with engine.models_transaction():
                rows = {m.name: _run_model(engine, m) for m in models if m.name in selected}
            for name, count in rows.items():  # in dependency order
                yield dg.MaterializeResult(asset_key=name, metadata={"dagster/row_count": count})
            for key in sorted(context.selected_asset_check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name)):
                yield check_result(engine, checks[(key.asset_key.to_user_string(), key.name)])

    return [_run]


def model_failure(model: str, exc: BaseException) -> str:
    """What a failed model's step says: the model, the kind of error, and its message if it holds no data
    (``pipelines.engines.query_error``: errors about the query quote SQL; others may quote a case value)."""
    kind = type(exc).__name__
    if query_error(exc):
        return f"SQL model {model} failed: {kind}: {str(exc).strip()}"
    return f"SQL model {model} failed: {kind} (its message may quote a case value: rerun the model's SQL to see it)"


def _run_model(engine: Engine, model: SqlModel) -> int:
    try:
        return engine.run_model(model.name, model.sql, view=model.is_view)
    except engine_errors() as exc:
        raise dg.Failure(description=model_failure(model.name, exc)) from None


def sql_models() -> list[SqlModel]:
    return discover_models(project_root() / "models", source_tables())
