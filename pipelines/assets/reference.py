"""Reference tables the SQL models read, loaded from ``data/reference/`` (documented there)."""

import dagster as dg
import polars as pl

from pipelines import warehouse
from pipelines.resources import ParcoursResource
from pipelines.settings import project_root

REFERENCE_TABLES: dict[str, tuple[str, dict[str, pl.DataType]]] = {
    "ref_avoidable_conditions": ("avoidable_conditions.csv", {"diagnosis_group": pl.String()}),
    "ref_negative_control_conditions": ("negative_control_conditions.csv", {"diagnosis_group": pl.String()}),
    "ref_outcome_parameters": ("outcome_parameters.csv", {"value": pl.Float64()}),
}


def load_reference(table: str) -> pl.DataFrame:
    file, overrides = REFERENCE_TABLES[table]
    return pl.read_csv(project_root() / "data" / "reference" / file, schema_overrides=overrides)


def reference_asset(table: str) -> dg.AssetsDefinition:
    file = REFERENCE_TABLES[table][0]

    @dg.asset(
        name=table,
        group_name="reference",
        kinds={"duckdb", "csv"},
        description=f"data/reference/{file}, as a table for the SQL models.",
        code_version=str(hash((project_root() / "data" / "reference" / file).read_bytes())),
    )
    def _load(parcours: ParcoursResource) -> dg.MaterializeResult:
        frame = load_reference(table)
        with warehouse.connect(parcours.settings().warehouse_path) as con:
            warehouse.replace_table(con, table, frame)
        return dg.MaterializeResult(metadata={"dagster/row_count": frame.height, "source": f"data/reference/{file}"})

    return _load


def reference_assets() -> list[dg.AssetsDefinition]:
    return [reference_asset(table) for table in REFERENCE_TABLES]
