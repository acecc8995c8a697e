"""One benchmark task, run in its own process so that its peak memory is its own.

``python -m pipelines.bench.tasks TASK --data DIR --result FILE``: the task times its own work
(imports excluded) and writes ``{"seconds": ..., "stages": {...}, "rows": ..., "check": ...}``
to FILE; the runner reads the process's peak RSS from the operating system.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

PARQUET_DIR = "bench_parquet"
"""Under the point's data folder: the accepted raw tables and reference tables, exported once
after the first pipeline run, which every peer reads."""
STAGE_NAMES = {"publication": "serving"}
"""Stages of ``pipelines.run_progress`` renamed as the benchmark's results have always named them."""
TODAY = date(2026, 7, 1)
Result = dict[str, Any]


def _parquet(data: Path) -> Path:
    return data / PARQUET_DIR


WHOLE_FEDERATION_UP_TO = 1_000_000
"""Up to this size the generator simulates the federation at once (7.6 GB at 1,000,000 persons)..."""
BLOCK_PERSONS = 500_000
"""... above it, in independent blocks of this many persons and 12 agencies each (``pipelines.bench.blocks``)."""


def task_generate(data: Path, persons: int) -> Result:
    from pipelines.synthetic.exports import write_landing
    from pipelines.synthetic.federation import FederationSpec, generate_federation

    shutil.rmtree(data, ignore_errors=True)
    spec = FederationSpec(persons=persons, months=36)
    started = time.perf_counter()
    if persons > WHOLE_FEDERATION_UP_TO:
        from pipelines.bench.blocks import write_in_blocks

        rows = write_in_blocks(data, persons, BLOCK_PERSONS, spec)
        return {"seconds": time.perf_counter() - started, "rows": rows, "blocks": -(-persons // BLOCK_PERSONS)}
    federation = generate_federation(spec)
    federation.export_format = dict.fromkeys(federation.export_format, "csv_utf8")
    write_landing(federation, data)
    rows = sum(federation.ground_truth["rows"].values())
    return {"seconds": time.perf_counter() - started, "rows": rows}


def task_generate_demo(data: Path) -> Result:
    """The federation ``make demo`` builds: ``parcours generate``'s defaults, every export format in turn."""
    from pipelines.synthetic.exports import write_landing
    from pipelines.synthetic.federation import FederationSpec, generate_federation

    shutil.rmtree(data, ignore_errors=True)
    started = time.perf_counter()
    federation = generate_federation(FederationSpec())
    write_landing(federation, data)
    return {"seconds": time.perf_counter() - started, "rows": sum(federation.ground_truth["rows"].values())}


def _stage_of_steps() -> dict[str, str]:
    """Each step's stage as ``parcours run`` reports it, publication named ``serving`` as in earlier results."""
    from pipelines.assets import all_assets
    from pipelines.run_progress import stage_of_steps

    return {step: STAGE_NAMES.get(stage, stage) for step, stage in stage_of_steps(all_assets()).items()}


def task_pipeline(data: Path) -> Result:
    """The whole asset graph in process, on a fresh warehouse; seconds per stage from Dagster's steps."""
    from dagster._core.events import StepSuccessData  # not exported at the top level

    from pipelines.assets import all_assets

    for folder in ("warehouse", "serving", "reports", "audit"):
        shutil.rmtree(data / folder, ignore_errors=True)
    stage_of = _stage_of_steps()
    result, total = _materialise(all_assets(), data, "the pipeline")
    stages: dict[str, float] = {}
    for event in result.all_events:
        data_of_step = event.event_specific_data
        if event.event_type_value == "STEP_SUCCESS" and isinstance(data_of_step, StepSuccessData):
            stage = stage_of.get(event.step_key or "", "models")
            stages[stage] = stages.get(stage, 0.0) + data_of_step.duration_ms / 1000
    suites = _suites_seconds(result.all_events)
    if suites:
        stages["ingest"] = stages.get("ingest", 0.0) - suites
        stages["quality"] = stages.get("quality", 0.0) + suites
    stages["framework"] = total - sum(stages.values())
    with duckdb.connect(str(data / "warehouse" / "parcours.duckdb"), read_only=True) as con:
        rows = int(con.sql("select sum(rows_in) from raw_landing_files").fetchall()[0][0])
    return {"seconds": total, "stages": stages, "rows": rows}


def stage_selection(stage: str) -> tuple[list[Any], list[str], int]:
    """Every asset of a run, the asset keys of ``stage``'s steps (a step that makes several assets, the raw
    tables or the SQL models, is selected by all of them) and the number of those steps."""
    from pipelines.assets import all_assets

    steps = {step for step, of in _stage_of_steps().items() if of == stage}
    assets = all_assets()
    keys = sorted(key.to_user_string() for a in assets if a.node_def.name in steps for key in a.keys)
    return assets, keys, len(steps)


def _stage_task(stage: str) -> Callable[[Path], Result]:
    """One stage of the pipeline alone, in this process, on the warehouse an earlier run (or the stages before
    it) left under ``data``: a point whose whole run takes hours is measured stage by stage, each stage's peak
    memory its own, and a stage measured again after a change (``stage_serving``: the release, its disclosure
    audit and the snapshots it writes)."""

    def run(data: Path) -> Result:
        assets, keys, steps = stage_selection(stage)
        _, seconds = _materialise(assets, data, f"the {stage} stage", selection=keys)
        return {"seconds": seconds, "rows": steps}

    run.__doc__ = _stage_task.__doc__
    return run


def _materialise(
    assets: Sequence[Any], data: Path, what: str, selection: Sequence[str] | None = None
) -> tuple[Any, float]:
    """``assets`` materialised in this process on the folder ``data``, Dagster's logs quiet: the result and its
    wall seconds; a failure raises, naming ``what`` failed."""
    import dagster as dg

    from pipelines.resources import ParcoursResource

    started = time.perf_counter()
    result = dg.materialize(
        assets,
        selection=list(selection) if selection is not None else None,
        resources={"parcours": ParcoursResource(data_dir=str(data))},
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
    )
    if not result.success:
        raise RuntimeError(f"{what} failed; run `parcours run --data-dir` on this folder to see why")
    return result, time.perf_counter() - started


def task_models(data: Path) -> Result:
    """The models stage alone (every SQL model and its checks, as the pipeline's ``sql_models`` step runs
    them) on the warehouse an earlier pipeline run left under ``data``: what a memory limit costs the
    models, measured on a copy of a large warehouse without ingesting it again. The raw zone's views are
    first pointed at the copy's own Parquet files (they name the files by absolute path)."""

    from pipelines import warehouse
    from pipelines.assets.models import model_assets
    from pipelines.contract import load_contract
    from pipelines.ingest.raw_zone import RawZone, refresh_views

    database = data / "warehouse" / "parcours.duckdb"
    with warehouse.connect(database) as con:
        refresh_views(con, RawZone.of(con), load_contract())
    result, seconds = _materialise(model_assets(), data, "the models stage")
    checks = [
        e.asset_check_evaluation_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    return {"seconds": seconds, "rows": len(checks), "check": all(c.passed for c in checks)}


def _suites_seconds(events: Sequence[Any]) -> float:
    """The contract suites' seconds inside the ingestion step, from the ledger's materialisation."""
    from pipelines.assets.ingestion import SUITES_SECONDS
    from pipelines.ingest.load import LANDING_FILES_TABLE

    for event in events:
        if event.event_type_value != "ASSET_MATERIALIZATION":
            continue
        materialization = event.event_specific_data.materialization
        if materialization.asset_key.to_user_string() == LANDING_FILES_TABLE:
            value = materialization.metadata.get(SUITES_SECONDS)
            return float(value.value) if value is not None else 0.0
    return 0.0


def task_export(data: Path) -> Result:
    """Once per size, after the first pipeline run and apart from it (so that its memory is not the
    pipeline's): every table the SQL models read, as Parquet, and the pipeline's figures for the peers."""
    from pipelines.assets.models import source_tables
    from pipelines.bench.outcome_peers import pipeline_result

    folder = _parquet(data)
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with duckdb.connect(str(data / "warehouse" / "parcours.duckdb"), read_only=True) as con:
        existing = {row[0] for row in con.sql("select table_name from information_schema.tables").fetchall()}
        tables = sorted(source_tables() & existing)
        for table in tables:
            con.sql(f"copy {table} to '{folder / (table + '.parquet')}' (format parquet)")
        pipeline_result(con).write_parquet(folder / "pipeline_outcome.parquet")
    return {"seconds": time.perf_counter() - started, "rows": len(tables)}


def task_floor_ingest(data: Path) -> Result:
    from pipelines.bench.ingest_peers import duckdb_read_csv, landing_csvs

    files = landing_csvs(data / "landing")
    started = time.perf_counter()
    rows = duckdb_read_csv(files, data / "floor_ingest.duckdb")
    return {"seconds": time.perf_counter() - started, "rows": rows}


def task_ingest(data: Path) -> Result:
    """The ingestion alone (``ingest_files``: reading, the contract's checks, the privacy guard, quarantine,
    re-keying, the raw zone and the ledger) of every landing file into a fresh warehouse under
    ``data/ingest_only`` (kept, to compare two versions' pseudonyms): the pipeline's ingest stage without
    Dagster and the contract suites, for profiling it beside ``floor_ingest``."""
    from pipelines import warehouse
    from pipelines.contract import load_contract
    from pipelines.ingest.pseudonyms import DEMO_KEY
    from pipelines.ingest.service import ingest_files, resolve_paths

    folder = data / "ingest_only"
    shutil.rmtree(folder, ignore_errors=True)
    files = resolve_paths([data / "landing"])
    contract = load_contract()
    started = time.perf_counter()
    with warehouse.connect(folder / "parcours.duckdb") as con:
        reports = ingest_files(con, files, contract, DEMO_KEY, TODAY)
    seconds = time.perf_counter() - started
    rows = sum(r.rows_in for r in reports)
    return {
        "seconds": seconds,
        "rows": rows,
        "check": all(r.rows_in == r.rows_accepted + r.rows_quarantined for r in reports if r.status != "duplicate"),
    }


def task_pandas_ingest(data: Path) -> Result:
    from pipelines.bench.ingest_peers import landing_csvs, pandas_ingest
    from pipelines.contract import load_contract
    from pipelines.ingest.pseudonyms import DEMO_KEY

    files = landing_csvs(data / "landing")
    _warm_imports()
    started = time.perf_counter()
    counts = pandas_ingest(files, load_contract(), DEMO_KEY, TODAY)
    seconds = time.perf_counter() - started
    ledger = pl.read_parquet(_parquet(data) / "raw_landing_files.parquet")
    pipeline = {
        Path(r["relative_path"]).name: (r["rows_accepted"], r["rows_quarantined"]) for r in ledger.iter_rows(named=True)
    }
    same = all(pipeline.get(name) == value for name, value in counts.items())
    return {"seconds": seconds, "rows": sum(a + q for a, q in counts.values()), "check": same}


def task_floor_models(data: Path) -> Result:
    """Every SQL model under models/, in dependency order, in a bare DuckDB file over the Parquet sources."""
    from pipelines.assets.models import sql_models

    models = sql_models()  # in dependency order
    database = data / "floor_models.duckdb"
    database.unlink(missing_ok=True)
    con = duckdb.connect(str(database))
    try:
        for path in sorted(_parquet(data).glob("*.parquet")):
            con.sql(f"create view {path.stem} as select * from read_parquet('{path}')")
        started = time.perf_counter()
        for model in models:
            con.sql(f"create {'view' if model.is_view else 'table'} {model.name} as {model.sql}")
        seconds = time.perf_counter() - started
    finally:
        con.close()
        database.unlink(missing_ok=True)
    return {"seconds": seconds, "rows": len(models)}


def _warm_imports() -> None:
    """Import what every peer needs before the clock starts: a library's import is not its speed
    (pandas takes about half a second, DuckDB's first result to Polars loads Arrow)."""
    import pandas  # noqa: F401
    import pyarrow  # noqa: F401

    with duckdb.connect() as con:
        con.sql("select 1 as warm").pl()


def _outcome(peer: str) -> Callable[[Path], Result]:
    def run(data: Path) -> Result:
        from pipelines.bench.outcome_peers import PEERS

        folder = _parquet(data)
        _warm_imports()
        started = time.perf_counter()
        frame = PEERS[peer](folder / "raw_episodes.parquet", folder / "raw_events.parquet")
        seconds = time.perf_counter() - started
        expected = pl.read_parquet(folder / "pipeline_outcome.parquet")
        return {"seconds": seconds, "rows": int(frame["episodes"].sum()), "check": frame.equals(expected)}

    return run


def task_impact(data: Path, database: Path | None = None) -> Result:
    """The main study's data: propensity model, 1:1 nearest-neighbour matching with replacement and its
    Abadie-Imbens interval; then the study's own doubly robust estimate with 1,000 bootstrap refits."""
    import numpy as np

    from pipelines import warehouse
    from pipelines.impact.estimators import estimate_effect
    from pipelines.impact.rates import ratio_effect
    from pipelines.impact.study import load_studies, study_dataset, study_population, treatment_and_covariates

    spec = next(s for s in load_studies() if s.name == "unplanned_hospitalisations")
    with warehouse.connect(database or data / "serving" / "parcours_analyst.duckdb", read_only=True) as con:
        frame, _ = study_population(spec, study_dataset(con, spec))
    t, x = treatment_and_covariates(spec, frame)
    y = frame["unplanned_admissions"].cast(pl.Float64).to_numpy()
    years = np.maximum(frame["person_years"].to_numpy(), 1e-9)
    started = time.perf_counter()
    matched = estimate_effect(y, t, x, "match", "att", 1000, spec.seed)
    middle = time.perf_counter()
    ratio, _, _ = ratio_effect(y, years, t, x, "aipw", 1000, spec.seed)
    end = time.perf_counter()
    return {
        "seconds": end - started,
        "stages": {"matching": middle - started, "aipw_1000_resamples": end - middle},
        "rows": int(t.shape[0]),
        "check": bool(matched.ci_low <= matched.estimate <= matched.ci_high and ratio.ci_low <= ratio.estimate),
    }


def task_dashboard(data: Path) -> Result:
    from pipelines.bench.dashboard_latency import measure

    return measure(data / "serving" / "parcours_serving.duckdb")


TASKS: dict[str, Callable[[Path], Result]] = {
    "pipeline": task_pipeline,
    "export": task_export,
    "floor_ingest": task_floor_ingest,
    "ingest": task_ingest,
    "pandas_ingest": task_pandas_ingest,
    "floor_models": task_floor_models,
    "models": task_models,
    **{f"stage_{stage}": _stage_task(stage) for stage in ("ingest", "models", "studies", "serving")},
    "serving": _stage_task("serving"),
    "outcome_duckdb": _outcome("duckdb"),
    "outcome_polars": _outcome("polars"),
    "outcome_pandas": _outcome("pandas"),
    "impact": task_impact,
    "dashboard": task_dashboard,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("task", choices=["generate", "generate_demo", *TASKS])
    parser.add_argument("--data", required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--persons", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("PARCOURS_DEMO", "1")
    os.environ.setdefault("PARCOURS_TODAY", TODAY.isoformat())
    data = Path(args.data)
    if args.task == "generate":
        result = task_generate(data, args.persons)
    elif args.task == "generate_demo":
        result = task_generate_demo(data)
    else:
        result = TASKS[args.task](data)
    Path(args.result).write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()
