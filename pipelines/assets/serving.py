"""Publication: the files the dashboards open, one per audience, audited before they are swapped in."""

from datetime import UTC, datetime

import dagster as dg

from pipelines import warehouse
from pipelines.assets.models import sql_models
from pipelines.assets.studies import STUDIES_MART, STUDY_INPUTS, STUDY_MARTS
from pipelines.contract import load_contract
from pipelines.ingest.pseudonyms import load_key
from pipelines.publication.cell_key import release_secret
from pipelines.publication.errors import PublicationError
from pipelines.publication.release import RELEASE_INPUTS, publish_release
from pipelines.resources import ParcoursResource

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
    tables = served_tables()
    with parcours.engine() as engine:
        # The snapshots are DuckDB files filled from the working database: the engine's marts (and the
        # analysts' person-level study inputs) are copied there first when they live elsewhere (Spark).
        engine.to_working(sorted({*SERVED_MODELS, *STUDY_INPUTS, DATA_CUTOFF_MODEL}))
        con = engine.working
        cutoff = warehouse.scalar(con, f"select data_cutoff from {DATA_CUTOFF_MODEL}")
        metadata = {
            "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "run_id": context.run.run_id,
            "contract_version": load_contract().version,
            "data_cutoff": cutoff.isoformat() if cutoff else "",
        }
        marts = {t: warehouse.query(con, f"select * from {warehouse.quote_identifier(t)}") for t in RELEASE_INPUTS}
        try:
            summary = publish_release(con, marts, tables, settings.serving_path, metadata, release_secret(load_key()))
        except PublicationError as exc:
            raise dg.Failure(description=f"publication refused: {exc}") from None
        # Person-level: only the analysts' study builder opens it, never a funder or agency page.
        analyst = warehouse.publish_snapshot(con, STUDY_INPUTS, settings.analyst_snapshot, metadata)
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
