"""Landing files → raw tables, and the run's parameters."""

import dagster as dg
import polars as pl

from pipelines import warehouse
from pipelines.contract import load_contract
from pipelines.ingest.load import (
    LANDING_FILES_TABLE,
    IngestError,
    load_raw_tables,
    raw_table_name,
    read_and_type,
    unaccounted_rows,
)
from pipelines.ingest.readers import discover_landing_files
from pipelines.resources import ParcoursResource

RUN_PARAMETERS_TABLE = "ref_run_parameters"


def raw_asset_keys() -> list[str]:
    return [raw_table_name(e) for e in load_contract().entities] + [LANDING_FILES_TABLE]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            key,
            group_name="ingestion",
            kinds={"duckdb"},
            description=(
                "Every agency file received, with its SHA-256 and rows in and loaded."
                if key == LANDING_FILES_TABLE
                else f"Agency exports of {key.removeprefix('raw_')}, typed by the data contract, with lineage."
            ),
        )
        for key in raw_asset_keys()
    ],
    check_specs=[
        dg.AssetCheckSpec(
            "every_row_accounted_for",
            asset=LANDING_FILES_TABLE,
            blocking=True,
            description="For every file, rows in = rows stored in the raw tables.",
        )
    ],
)
def raw_tables(context: dg.AssetExecutionContext, parcours: ParcoursResource):
    settings = parcours.settings()
    contract = load_contract()
    files = discover_landing_files(settings.landing_dir)
    if not files:
        raise dg.Failure(
            f"No agency export found under {settings.landing_dir}. Put each agency's files in "
            "landing/<agency>/ (or run `parcours generate` for a synthetic federation)."
        )
    context.log.info(f"{len(files)} landing files under {settings.landing_dir}")
    try:
        frames, loads = read_and_type(files, contract, progress=context.log.info)
    except IngestError as exc:
        raise dg.Failure(str(exc)) from None
    with warehouse.connect(settings.warehouse_path) as con:
        counts = load_raw_tables(con, contract, frames, loads)
        missing = unaccounted_rows(con, contract)
    for name, rows in counts.items():
        yield dg.MaterializeResult(asset_key=name, metadata={"dagster/row_count": rows})
    yield dg.MaterializeResult(
        asset_key=LANDING_FILES_TABLE,
        metadata={"files": len(files), "dagster/row_count": len(loads)},
    )
    yield dg.AssetCheckResult(
        asset_key=LANDING_FILES_TABLE,
        check_name="every_row_accounted_for",
        passed=missing.is_empty(),
        metadata={
            "files": len(files),
            "rows_in": sum(load.rows_in for load in loads),
            "files_with_rows_unaccounted": missing.height,
        },
    )


@dg.asset(
    name=RUN_PARAMETERS_TABLE,
    group_name="reference",
    kinds={"duckdb"},
    description="Analyst settings the SQL models read as a table (never formatted into SQL): the data cut-off.",
)
def run_parameters(context: dg.AssetExecutionContext, parcours: ParcoursResource) -> dg.MaterializeResult:
    settings = parcours.settings()
    frame = pl.DataFrame({"data_cutoff": [settings.data_cutoff]}, schema={"data_cutoff": pl.Date})
    with warehouse.connect(settings.warehouse_path) as con:
        warehouse.replace_table(con, RUN_PARAMETERS_TABLE, frame)
    cutoff = settings.data_cutoff.isoformat() if settings.data_cutoff else "derived from the data"
    context.log.info(f"data cut-off: {cutoff}")
    return dg.MaterializeResult(metadata={"data_cutoff": cutoff})
