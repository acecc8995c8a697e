"""The serving snapshot: the only database the dashboards ever open."""

from datetime import UTC, datetime

import dagster as dg

from pipelines import warehouse
from pipelines.assets.models import sql_models
from pipelines.assets.studies import STUDIES_MART, STUDY_INPUTS, STUDY_MARTS
from pipelines.contract import load_contract
from pipelines.resources import ParcoursResource

SERVED_MODELS = [m.name for m in sql_models() if m.is_served]


def served_tables() -> list[str]:
    return sorted([*SERVED_MODELS, *STUDY_MARTS])


@dg.asset(
    # The studies' mart asset writes the curve and event-study marts too.
    deps=sorted([*SERVED_MODELS, STUDIES_MART]),
    group_name="serving",
    kinds={"duckdb"},
    description=(
        "A read-only DuckDB file with the marts, written beside the previous one and swapped in "
        "atomically at the end of the run; and, apart, the person-level study inputs for analysts."
    ),
)
def serving_snapshot(context: dg.AssetExecutionContext, parcours: ParcoursResource) -> dg.MaterializeResult:
    settings = parcours.settings()
    tables = served_tables()
    with warehouse.connect(settings.warehouse_path) as con:
        cutoff = warehouse.scalar(con, "select data_cutoff from int_data_cutoff")
        metadata = {
            "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "run_id": context.run.run_id,
            "contract_version": load_contract().version,
            "data_cutoff": cutoff.isoformat() if cutoff else "",
        }
        path = warehouse.publish_snapshot(con, tables, settings.serving_path, metadata)
        # Person-level: only the analysts' study builder opens it, never a funder or agency page.
        analyst = warehouse.publish_snapshot(con, STUDY_INPUTS, settings.analyst_snapshot, metadata)
    context.log.info(f"published {len(tables)} tables to {path}, study inputs to {analyst}")
    return dg.MaterializeResult(metadata={"path": str(path), "tables": ", ".join(tables), **metadata})
