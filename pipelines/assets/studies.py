"""One Dagster asset per impact study in ``data/studies/``, and the mart funders read."""

import dagster as dg
import polars as pl

from pipelines import warehouse
from pipelines.impact.registration import RegistrationError, registration_problem
from pipelines.impact.study import (
    EVENT_STUDY_SCHEMA,
    StudySpec,
    curve_rows,
    event_study,
    load_studies,
    result_rows,
    run_study,
)
from pipelines.presentation.verdict import render
from pipelines.resources import ParcoursResource

STUDY_INPUTS = [
    "fct_episodes",
    "fct_hospital_admissions",
    "fct_carer_load",
    "fct_prior_use",
    "fct_ruptures",
    "int_events",
    "stg_persons",
]
STUDIES_MART = "mart_impact_studies"
CURVES_MART = "mart_study_curves"
EVENT_STUDY_MART = "mart_study_event_study"
STUDY_MARTS = (STUDIES_MART, CURVES_MART, EVENT_STUDY_MART)
"""Tables the studies' mart asset writes, all served."""


def study_table(spec: StudySpec) -> str:
    return f"study_{spec.name}"


def study_asset(spec: StudySpec) -> dg.AssetsDefinition:
    @dg.asset(
        name=study_table(spec),
        deps=STUDY_INPUTS,
        group_name="studies",
        kinds={"python", "sql"},
        code_version=spec.version,
        description=" ".join(spec.question.split()),
        metadata={"design": spec.design, "estimand": spec.estimand, "outcome": spec.outcome},
    )
    def _study(context: dg.AssetExecutionContext, parcours: ParcoursResource) -> dg.MaterializeResult:
        # A plan is fixed before its outcomes are seen: an unregistered or silently changed study stops here.
        try:
            problem = registration_problem(spec.name)
        except RegistrationError as exc:
            problem = str(exc)
        if problem:
            raise dg.Failure(description=problem)
        # The study queries run on the engine; the (small) results are kept in the working database.
        with parcours.engine() as engine:
            result = run_study(engine, spec)
            con = engine.working
            warehouse.replace_table(con, study_table(spec), result_rows(result))
            warehouse.replace_table(con, f"{study_table(spec)}_curves", curve_rows(result))
            if result.event_study is not None:
                events = result.event_study
            elif spec.design == "did":  # a study too small to estimate: its population's rates all the same
                events = event_study(engine, spec)
            else:
                events = pl.DataFrame(schema=EVENT_STUDY_SCHEMA)
            events = events.select(pl.lit(spec.name).alias("study"), pl.all())
            warehouse.replace_table(con, f"{study_table(spec)}_event_study", events)
        if not result.publishable:
            context.log.warning(f"{spec.name}: {render(result.verdict, 'en')}")
        metadata: dict[str, object] = {
            "publishable": result.publishable,
            "verdict": result.verdict.kind,
            "n_treated": result.n_treated,
            "n_comparison": result.n_comparison,
            "failed_checks": ", ".join(result.failing) or "none",
        }
        if result.main is not None:
            metadata.update(
                {"estimate": result.main.estimate, "ci_low": result.main.ci_low, "ci_high": result.main.ci_high}
            )
        return dg.MaterializeResult(metadata=metadata)  # type: ignore[arg-type]

    return _study


def studies_mart(specs: list[StudySpec]) -> dg.AssetsDefinition:
    @dg.asset(
        name=STUDIES_MART,
        deps=[study_table(s) for s in specs],
        group_name="marts",
        kinds={"duckdb"},
        description=(
            "Every impact study's results, diagnostics and publishability, its cumulative-incidence curves "
            "and event-study rates, for the serving snapshot."
        ),
    )
    def _mart(parcours: ParcoursResource) -> dg.MaterializeResult:
        counts = {}
        with warehouse.connect(parcours.settings().warehouse_path) as con:
            for mart, suffix in ((STUDIES_MART, ""), (CURVES_MART, "_curves"), (EVENT_STUDY_MART, "_event_study")):
                tables = [f"{study_table(s)}{suffix}" for s in specs]
                frames = [warehouse.query(con, f"select * from {warehouse.quote_identifier(t)}") for t in tables]
                frame = pl.concat(frames, how="diagonal_relaxed")
                warehouse.replace_table(con, mart, frame)
                counts[mart] = frame.height
        return dg.MaterializeResult(
            metadata={"dagster/row_count": counts[STUDIES_MART], **{f"rows_{k}": v for k, v in counts.items()}}
        )

    return _mart


def study_assets() -> list[dg.AssetsDefinition]:
    specs = load_studies()
    return [*(study_asset(s) for s in specs), studies_mart(specs)]
