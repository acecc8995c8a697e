"""Validation of the studies over many generated federations: coverage, false effects, publishability.

For each scenario of the generator and its null version, and each federation (one seed each):
generate the federation, load its tables straight into a DuckDB warehouse as the raw tables
(file ingestion is skipped: it is tested on its own, and it does not change a value), run the SQL
models the studies read, then run each study exactly as the pipeline does (``run_study``: the
study population SQL, the design, the negative controls, the gate). Descriptive extras that do
not touch the estimate or the verdict (cumulative-incidence curves, subgroups) are left out to keep
hundreds of federations affordable. The truth is the generator's sample ATT over the very treated
episodes the estimate is about (after the history rule and trimming), from
``pipelines/synthetic/truth.py``.

Run by ``make validate`` (``tests/test_validation.py``, marked ``slow``); figures in
``docs/validation.md``.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from pipelines import warehouse
from pipelines.assets.ingestion import RUN_PARAMETERS_TABLE
from pipelines.assets.reference import REFERENCE_TABLES, load_reference
from pipelines.assets.studies import STUDY_INPUTS
from pipelines.impact import replay
from pipelines.impact.spec import StudySpec, load_studies
from pipelines.impact.study import StudyResult, run_study
from pipelines.impact.threads import share_cores
from pipelines.sql_models import SqlModel

DEFAULT_PERSONS = 6000
DEFAULT_AGENCIES = 8


CRISIS_WORLDS: dict[str, tuple[str, str]] = {
    "crisis_short": ("crisis_enrolment", "hospital:3-45"),
    "crisis_long": ("crisis_enrolment", "hospital:150-300"),
    "crisis_fall": ("crisis_enrolment", "fall:14-180"),
    "crisis_carer": ("crisis_enrolment", "carer:30-240:2.5"),
    "crisis_lasting": ("crisis_enrolment", "hospital:14-120:4:90"),
}
"""Referral crises the studies were not written for (``Crisis.parse``): shorter and longer windows than the
generator's default (14-120 days before the index date; ``crisis_long`` starts 5 to 10 months before, always
longer than the DiD's 4-month washout), a fall, a carer's exhaustion that no event marks,
and a crisis that goes on 90 days after enrolment (confounding that no covariate records: only the
negative controls can see it). Each is a ``crisis_enrolment`` world with that crisis."""


SAME_NULL_AS_BASELINE = ("heterogeneous_effects",)
"""Worlds whose null twin is the baseline null world itself (the same tables for the same seed: only the
effects differ), so the validation runs it once."""


@dataclass(frozen=True)
class Job:
    scenario: str
    null: bool
    seed: int
    persons: int = DEFAULT_PERSONS
    agencies: int = DEFAULT_AGENCIES
    studies: tuple[str, ...] = ("unplanned_hospitalisations", "hospitalisations_did")
    crisis: str = ""
    """The crisis of a crisis world (``Crisis.parse``); empty: the generator's default."""

    @classmethod
    def for_world(cls, world: str, null: bool, seed: int, **options: Any) -> Job:
        """A named scenario of the generator, or one of ``CRISIS_WORLDS``."""
        scenario, crisis = CRISIS_WORLDS.get(world, (world, ""))
        return cls(scenario, null, seed, crisis=crisis, **options)

    @property
    def world(self) -> str:
        named = {value: name for name, value in CRISIS_WORLDS.items()}
        return named.get(
            (self.scenario, self.crisis), f"{self.scenario}@{self.crisis}" if self.crisis else self.scenario
        )


def models_for_studies(models: list[SqlModel]) -> list[SqlModel]:
    """The SQL models the studies read, and everything they read, in dependency order."""
    by_name = {m.name: m for m in models}
    needed: set[str] = set()
    stack = [name for name in STUDY_INPUTS if name in by_name]
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        stack.extend(d for d in by_name[name].depends_on if d in by_name)
    return [m for m in models if m.name in needed]


def load_federation(con: Any, tables: dict[str, pl.DataFrame]) -> None:
    """The generated tables as raw tables, the reference tables, and the SQL models the studies read."""
    from pipelines.assets.models import sql_models

    for entity, frame in tables.items():
        warehouse.replace_table(con, f"raw_{entity}", frame)
    for table in REFERENCE_TABLES:
        warehouse.replace_table(con, table, load_reference(table))
    warehouse.replace_table(
        con, RUN_PARAMETERS_TABLE, pl.DataFrame({"data_cutoff": [None]}, schema={"data_cutoff": pl.Date})
    )
    for model in models_for_studies(sql_models()):
        warehouse.run_model(con, model.name, model.sql)


def validation_spec(spec: StudySpec) -> StudySpec:
    """The study as specified, less the descriptive extras that do not change its estimate or verdict."""
    return spec.model_copy(update={"subgroups": []})


def run_job(job: Job) -> list[dict[str, Any]]:
    """One federation: every study's estimate, published interval, verdict and truth."""
    from pipelines.synthetic import truth
    from pipelines.synthetic.federation import FederationSpec, generate_federation
    from pipelines.synthetic.scenarios import Crisis

    crisis = Crisis.parse(job.crisis) if job.crisis else Crisis()
    federation = generate_federation(
        FederationSpec(
            agencies=job.agencies, persons=job.persons, seed=job.seed, scenario=job.scenario, null=job.null,
            crisis=crisis,
        )
    )  # fmt: skip
    specs = {s.name: s for s in load_studies()}
    rows = []
    with tempfile.TemporaryDirectory() as folder, warehouse.connect(Path(folder) / "validation.duckdb") as con:
        load_federation(con, federation.tables)
        for name in job.studies:
            spec = validation_spec(specs[name])
            started = time.perf_counter()
            result = run_study(con, spec, descriptive=False)
            seconds = time.perf_counter() - started
            retained = pl.col("episode_id").is_in(result.retained_treated)
            estimand = truth.unplanned_admissions(federation.potential_outcomes, spec.follow_up_days, where=retained)
            row: dict[str, Any] = {
                "scenario": job.world,
                "null": job.null,
                "seed": job.seed,
                "persons": job.persons,
                "study": name,
                "truth": estimand.att,
                "truth_log_ratio": _log_ratio(estimand.treated_value, estimand.counterfactual_value),
                "seconds": seconds,
                **result_row(result),
            }
            rows.append(row)
    return rows


def result_row(result: StudyResult) -> dict[str, Any]:
    """What a results row keeps of one study's result: its verdict, published and uncalibrated intervals, and
    the ingredients other rules are replayed from (``replay.ingredients``)."""
    numbers = result.verdict.numbers
    return {
        "publishable": result.verdict.publishable,
        "kind": result.verdict.kind,
        "failed": ",".join(result.failing),
        "n_treated": result.n_treated,
        "n_comparison": result.n_comparison,
        "estimate": numbers.get("estimate"),
        "ci_low": numbers.get("ci_low"),
        "ci_high": numbers.get("ci_high"),
        "uncalibrated_estimate": result.main.estimate if result.main else None,
        "uncalibrated_ci_low": result.main.ci_low if result.main else None,
        "uncalibrated_ci_high": result.main.ci_high if result.main else None,
        "ease": (result.calibration or {}).get("systematic_error", {}).get("ease"),
        **_ingredients(result),
    }


def _log_ratio(treated: float | None, counterfactual: float | None) -> float | None:
    if treated is None or counterfactual is None or treated <= 0 or counterfactual <= 0:
        return None
    return math.log(treated / counterfactual)


def _ingredients(result: StudyResult) -> dict[str, Any]:
    """What calibration and the gate were computed from, so that other pre-set rules can be replayed on the
    same federations: the main and each negative control on the log rate-ratio scale, the fitted
    systematic error, every failed check and the DiD's dip ratios."""
    main = result.main
    systematic = (result.calibration or {}).get("systematic_error", {})
    return {
        "log_ratio": main.log_ratio if main else None,
        "log_ratio_se": main.log_ratio_se if main else None,
        "treated_value": main.treated_value if main else None,
        "uncalibrated_se": main.standard_error if main else None,
        "controls": {c.outcome: [c.log_ratio, c.log_ratio_se] for c in result.negative_controls},
        "systematic_mean": systematic.get("mean"),
        "systematic_sd": systematic.get("sd"),
        "systematic_mean_se": systematic.get("mean_se"),
        # Under a study's prior on the spread, the spread the interval was widened by (replay.ingredients).
        "systematic_interval_sd": systematic.get("posterior_sd"),
        "spread_prior_scale": systematic.get("spread_prior_scale"),
        "dip_ratio": (result.design.get("dip") or {}).get("ratio"),
        "dip_ratio_low": (result.design.get("dip") or {}).get("ratio_low"),
        "washout_dip_ratio": (result.design.get("washout_dip") or {}).get("ratio"),
        "placebo": result.placebo.estimate if result.placebo else None,
        "treated_trimmed": result.design.get("treated_trimmed"),
    }


def run_validation(jobs: Iterable[Job], workers: int = 1) -> pl.DataFrame:
    jobs = list(jobs)
    if workers <= 1:
        rows = [r for job in jobs for r in run_job(job)]
    else:
        with ProcessPoolExecutor(workers, initializer=share_cores, initargs=(workers,)) as pool:
            rows = [r for found in pool.map(run_job, jobs, chunksize=1) for r in found]
    return pl.DataFrame(rows, infer_schema_length=None)


def _covers(low: pl.Expr, high: pl.Expr) -> pl.Expr:
    return (low <= pl.col("truth")) & (pl.col("truth") <= high)


def summarise(results: pl.DataFrame) -> pl.DataFrame:
    """Per scenario, null or not, and study: how often publishable, coverage, intervals excluding zero, error."""
    published = pl.col("publishable")
    estimated = pl.col("estimate").is_not_null()
    covers = _covers(pl.col("ci_low"), pl.col("ci_high"))
    covers_raw = _covers(pl.col("uncalibrated_ci_low"), pl.col("uncalibrated_ci_high"))
    excludes_zero = (pl.col("ci_low") > 0) | (pl.col("ci_high") < 0)
    return (
        results.group_by("scenario", "null", "study")
        .agg(
            pl.len().alias("federations"),
            published.sum().alias("publishable"),
            (covers & published).sum().alias("published_covering"),
            (excludes_zero & published).sum().alias("published_excluding_zero"),
            (covers & estimated).sum().alias("all_covering"),
            estimated.sum().alias("estimated"),
            (covers_raw & estimated).sum().alias("uncalibrated_covering"),
            (pl.col("estimate") - pl.col("truth")).mean().alias("mean_error"),
            (pl.col("estimate") - pl.col("truth")).std().alias("sd_error"),
            (pl.col("uncalibrated_estimate") - pl.col("truth")).mean().alias("uncalibrated_mean_error"),
            pl.col("ease").median().alias("median_ease"),
        )
        .with_columns(
            (pl.col("published_covering") / pl.col("publishable")).alias("published_coverage"),
            (pl.col("published_excluding_zero") / pl.col("federations")).alias("share_published_excluding_zero"),
            (pl.col("publishable") / pl.col("federations")).alias("share_publishable"),
        )
        .sort("study", "scenario", "null")
    )


def _figure(value: float | None, spec: str) -> str:
    """A table figure, or a dash where there is none (one federation has no spread; no interval, no width)."""
    return "–" if value is None or math.isnan(value) else format(value, spec)


def markdown_tables(results: pl.DataFrame) -> str:
    """The figures of docs/validation.md, one table per study: each world and its null twin."""
    frame = results.filter(pl.col("estimate").is_not_null() | pl.col("publishable").is_not_null())
    if "error" in frame.columns:
        frame = frame.filter(pl.col("error").is_null())
    error = pl.col("estimate") - pl.col("truth")
    raw_error = pl.col("uncalibrated_estimate") - pl.col("truth")
    covers = _covers(pl.col("ci_low"), pl.col("ci_high"))
    raw_covers = _covers(pl.col("uncalibrated_ci_low"), pl.col("uncalibrated_ci_high"))
    excludes = (pl.col("ci_low") > 0) | (pl.col("ci_high") < 0)
    raw_excludes = (pl.col("uncalibrated_ci_low") > 0) | (pl.col("uncalibrated_ci_high") < 0)
    published = pl.col("publishable")
    table = (
        frame.group_by("study", "scenario", "null")
        .agg(
            pl.len().alias("n"),
            published.sum().alias("pub"),
            (covers & published).sum().alias("pub_cov"),
            (excludes & published).sum().alias("pub_excl"),
            covers.sum().alias("cov"),
            raw_covers.sum().alias("raw_cov"),
            raw_excludes.sum().alias("raw_excl"),
            error.mean().alias("err"),
            raw_error.mean().alias("raw_err"),
            (raw_error.std() / pl.len().sqrt()).alias("raw_err_se"),
            raw_error.std().alias("raw_sd"),
            pl.col("uncalibrated_se").mean().alias("raw_se"),
            ((pl.col("ci_high") - pl.col("ci_low")) / (pl.col("uncalibrated_ci_high") - pl.col("uncalibrated_ci_low")))
            .median()
            .alias("width"),
        )
        .sort("study", "scenario", "null")
    )
    lines = []
    for study in table["study"].unique(maintain_order=True):
        lines += [
            f"`{study}`:",
            "",
            "| world | null | federations | publishable | published covering truth | published excluding 0 "
            "| all covering (calibrated) | all covering (uncalibrated) | uncalibrated excluding 0 "
            "| mean error, calibrated | mean error, uncalibrated (s.e.) | SD of uncalibrated error "
            "| mean uncalibrated s.e. | calibrated / uncalibrated width |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in table.filter(pl.col("study") == study).iter_rows(named=True):
            lines.append(
                f"| {r['scenario']} | {'null' if r['null'] else 'effect'} | {r['n']} | {r['pub']} | "
                f"{r['pub_cov']} / {r['pub']} | {r['pub_excl']} | {r['cov']} | {r['raw_cov']} | {r['raw_excl']} | "
                f"{_figure(r['err'], '+.1f')} | {_figure(r['raw_err'], '+.1f')} ({_figure(r['raw_err_se'], '.1f')}) | "
                f"{_figure(r['raw_sd'], '.1f')} | {_figure(r['raw_se'], '.1f')} | {_figure(r['width'], '.2f')} |"
            )
        lines.append("")
    failed = (
        frame.select("study", pl.col("failed").str.split(","))
        .explode("failed")
        .filter(pl.col("failed").is_not_null() & (pl.col("failed") != ""))
        .group_by("study", "failed")
        .len()
        .sort("study", "len", descending=[False, True])
    )
    for study in failed["study"].unique(maintain_order=True):
        counts = ", ".join(
            f"{r['failed']} {r['len']}" for r in failed.filter(pl.col("study") == study).iter_rows(named=True)
        )
        lines.append(
            f"Checks that refused `{study}` ({frame.filter(pl.col('study') == study).height} results): {counts}."
        )
    return "\n".join(lines)


def coverage_target_met(share: float | None) -> bool:
    return share is not None and not math.isnan(share) and 0.90 <= share <= 0.99


def replay_results(paths: list[Path], rules: list[str], diagnose: bool = False, per_world: bool = False) -> str:
    """The replay table of ``rules`` over the rows of these results files (rows not calibrated are skipped),
    after the calibration's diagnosis when ``diagnose``, followed by each rule's world-by-world table against
    the issue's rules when ``per_world``."""
    rows = []
    for path in paths:
        with path.open(encoding="utf-8") as lines:
            rows += [
                found for found in (replay.ingredients(json.loads(line)) for line in lines if line.strip()) if found
            ]
    table = replay.replay_table(rows, rules)
    if per_world:
        table = "\n\n".join([table, *(replay.world_table(rows, rule) for rule in rules)])
    return f"{replay.diagnosis(rows)}\n\n{table}" if diagnose else table


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.impact.validation``: every scenario and null, results written as they come."""
    import argparse

    from pipelines.synthetic.scenarios import SCENARIOS

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--federations", type=int, default=100)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--persons", type=int, default=DEFAULT_PERSONS)
    parser.add_argument("--scenarios", nargs="*", default=list(SCENARIOS), help="named scenarios or CRISIS_WORLDS")
    parser.add_argument("--worlds", choices=("both", "null", "effect"), default="both")
    parser.add_argument("--crisis-worlds", action="store_true", help="also every world of CRISIS_WORLDS")
    parser.add_argument("--out", default=str(Path("data") / "generated" / "validation"))
    parser.add_argument("--tag", default="", help="written on every row (the code version measured)")
    parser.add_argument("--report", action="store_true", help="print the tables of results.jsonl in --out, run none")
    parser.add_argument(
        "--replay",
        nargs="+",
        metavar="RULE",
        help="replay calibration rules (pipelines/impact/replay.py) on results.jsonl in --out, run none",
    )
    parser.add_argument("--results", nargs="*", default=[], help="with --replay: more results.jsonl files")
    parser.add_argument("--diagnose", action="store_true", help="with --replay: also the calibration's diagnosis")
    parser.add_argument("--per-world", action="store_true", help="with --replay: also each rule's table world by world")
    args = parser.parse_args(argv)
    if args.replay:
        paths = [Path(args.out) / "results.jsonl", *map(Path, args.results)]
        print(replay_results(paths, args.replay, args.diagnose, args.per_world))
        return 0
    if args.report:
        print(markdown_tables(pl.read_ndjson(Path(args.out) / "results.jsonl", infer_schema_length=None)))
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    worlds = [*args.scenarios, *(CRISIS_WORLDS if args.crisis_worlds else [])]
    # Seeds outermost, null worlds first: a run cut short has the same federations in every world.
    jobs = [
        Job.for_world(world, null, seed, persons=args.persons)
        for seed in range(args.first_seed, args.first_seed + args.federations)
        for null in {"both": (True, False), "null": (True,), "effect": (False,)}[args.worlds]
        for world in worlds
        if not (null and world in SAME_NULL_AS_BASELINE)
    ]
    results = out / "results.jsonl"
    from concurrent.futures import as_completed

    with (
        ProcessPoolExecutor(args.workers, initializer=share_cores, initargs=(args.workers,)) as pool,
        results.open("a", encoding="utf-8") as sink,
    ):
        running = {pool.submit(run_job, job): job for job in jobs}
        for done in as_completed(running):
            job = running[done]
            try:
                rows = done.result()
            except Exception as exc:  # one federation that fails is recorded, not the end of the run
                rows = [{"scenario": job.scenario, "null": job.null, "seed": job.seed, "error": repr(exc)}]
            for row in rows:
                sink.write(json.dumps({**row, "tag": args.tag}) + "\n")
            sink.flush()
    frame = pl.read_ndjson(results)
    summarise(frame).write_csv(out / "summary.csv")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
