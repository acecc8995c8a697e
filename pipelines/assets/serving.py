"""Publication: the files the dashboards open, one per audience, audited before they are swapped in."""

from datetime import UTC, date, datetime
from typing import Any

import dagster as dg

from pipelines import warehouse
from pipelines.assets.models import sql_models
from pipelines.assets.studies import STUDIES_MART, STUDY_INPUTS, STUDY_MARTS
from pipelines.contract import load_contract
from pipelines.impact.spec import studies_dir
from pipelines.ingest.load import LANDING_FILES_TABLE
from pipelines.ingest.pseudonyms import load_key
from pipelines.ingest.raw_zone import MANIFEST_TABLE
from pipelines.operations.batches import batches, inputs_dir
from pipelines.operations.releases import (
    ReleaseError,
    check_name,
    code_version,
    earlier_funder_releases,
    earlier_shown_cells,
    free_name,
    mark_in_service,
    quarter_of,
    releases_dir,
    write_release,
)
from pipelines.publication.cell_key import release_secret
from pipelines.publication.errors import PublicationError
from pipelines.publication.release import RELEASE_INPUTS, publish_release, released_cutoff
from pipelines.resources import ParcoursResource
from pipelines.settings import Settings
from pipelines.writer_lock import WriterBusyError, writer_lock

DATA_CUTOFF_MODEL = "int_data_cutoff"
SERVED_MODELS = [m.name for m in sql_models() if m.is_served]


def served_tables() -> list[str]:
    return sorted([*SERVED_MODELS, *STUDY_MARTS])


@dg.asset(
    # The studies' mart asset writes the curve and event-study marts too.
    deps=sorted([*SERVED_MODELS, STUDIES_MART]),
    group_name="serving",
    kinds={"duckdb"},
    description=(
        "The release: for funders and for each agency a file of disclosure-controlled tables (cell-key "
        "perturbation, counts under 11 hidden, audited by a linear-programming attacker before anything is "
        "swapped in); for analysts every mart with the same tables unprotected; apart, the person-level study "
        "inputs for the analysts' study builder."
    ),
)
def serving_snapshot(context: dg.AssetExecutionContext, parcours: ParcoursResource) -> dg.MaterializeResult:
    settings = parcours.settings()
    try:
        with writer_lock(settings.warehouse_path, f"run {context.run.run_id}"):
            return _publish(context, parcours, settings)
    except WriterBusyError as exc:
        raise dg.Failure(description=str(exc)) from None


def _table_rows(con: Any, table: str) -> list[dict[str, Any]]:
    if not warehouse.table_exists(con, table):
        return []
    return warehouse.query(con, f"select * from {warehouse.quote_identifier(table)}").to_dicts()


def release_inputs(con: Any, settings: Settings) -> dict[str, Any]:
    """What a release records of its inputs: the landing files (every file of the ledger, with its status),
    the ingestion batches in order, the raw zone's manifest, and where the kept inputs are."""
    return {
        "landing_files": _table_rows(con, LANDING_FILES_TABLE),
        "batches": batches(con).to_dicts(),
        "raw_zone": [{k: v for k, v in row.items() if k != "written_at"} for row in _table_rows(con, MANIFEST_TABLE)],
        "kept_inputs": str(inputs_dir(settings.data_dir)),
    }


def _publish(context: dg.AssetExecutionContext, parcours: ParcoursResource, settings: Settings) -> dg.MaterializeResult:
    tables = served_tables()
    with parcours.engine() as engine:
        # The snapshots are DuckDB files filled from the working database: the engine's marts (and the
        # analysts' person-level study inputs) are copied there first when they live elsewhere (Spark).
        engine.to_working(sorted({*SERVED_MODELS, *STUDY_INPUTS, DATA_CUTOFF_MODEL}))
        con = engine.working
        cutoff = warehouse.scalar(con, f"select data_cutoff from {DATA_CUTOFF_MODEL}")
        root = releases_dir(settings.data_dir)
        try:
            asked = parcours.release_name()
            name = check_name(asked) if asked else free_name(root, quarter_of(cutoff or date.today()))
        except ReleaseError as exc:
            raise dg.Failure(description=str(exc)) from None
        if (root / name).exists():
            raise dg.Failure(description=f"release {name} exists and releases are never changed: name a new one")
        metadata = {
            "release": name,
            "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "run_id": context.run.run_id,
            "contract_version": load_contract().version,
            "data_cutoff": cutoff.isoformat() if cutoff else "",
        }
        marts = {t: warehouse.query(con, f"select * from {warehouse.quote_identifier(t)}") for t in RELEASE_INPUTS}
        try:
            # Every audience's release is attacked together with what it was shown before.
            earlier = earlier_funder_releases(root, settings.serving_path.name)
            shown_before = earlier_shown_cells(root, settings.serving_path.name)
            summary = publish_release(
                con, marts, tables, settings.serving_path, metadata, release_secret(load_key()), earlier,
                released_cutoff(settings.data_cutoff, cutoff), shown_before,
            )  # fmt: skip
        except PublicationError as exc:
            raise dg.Failure(description=f"publication refused: {exc}") from None
        # Person-level: only the analysts' study builder opens it, never a funder or agency page.
        analyst = warehouse.publish_snapshot(con, STUDY_INPUTS, settings.analyst_snapshot, metadata)
        inputs = release_inputs(con, settings)
    manifest = {
        **metadata,
        "code_version": code_version(),
        "parameters": {
            "data_cutoff": settings.data_cutoff.isoformat() if settings.data_cutoff else "",
            "today": settings.today.isoformat() if settings.today else "",
        },
        "serving_name": settings.serving_path.name,
        **inputs,
    }
    try:
        kept = write_release(root, name, settings.serving_path, studies_dir(), manifest)
        mark_in_service(kept, settings.serving_path)
    except ReleaseError as exc:
        raise dg.Failure(description=str(exc)) from None
    context.log.info(f"release {name} kept in {kept}")
    audiences = summary["audiences"]
    context.log.info(
        f"published {len(tables)} marts and the release for {len(audiences)} audiences beside "
        f"{settings.serving_path}; study inputs to {analyst}"
    )
    return dg.MaterializeResult(
        metadata={
            "path": str(settings.serving_path),
            "tables": ", ".join(tables),
            "audiences": len(audiences),
            "cells_released": sum(a["released"] for a in audiences),
            "cells_hidden": sum(a["hidden"] for a in audiences),
            "cells_recovered_by_the_auditor": sum(a["recovered"] for a in audiences),
            "persons_on_the_funders_map": summary["persons_on_map_region"],
            **metadata,
        }
    )
