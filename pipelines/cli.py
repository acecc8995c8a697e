"""The ``parcours`` command: generate a synthetic federation, run the pipeline, and more.

Start-up is kept light: this module imports only the standard library and light modules of ours,
so that ``parcours --help`` (and every sub-command's ``--help``) answers in a few hundredths of a
second; each command imports Dagster, DuckDB, Polars and the rest in its own body, when it runs
(``tests/test_cli.py`` checks which modules an import of this one loads).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import shutil
import sys
import threading
import time
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.settings import load_settings, project_root
from pipelines.synthetic.scenarios import SCENARIOS, Crisis  # plain data classes, no numerical library

EXPORT_FORMATS = ("csv_cp1252", "csv_utf8", "xlsx", "parquet")
"""The generator's export formats (``pipelines.synthetic.federation.EXPORT_FORMATS``, which imports numpy
and Polars), repeated here for ``--format``'s choices; a test keeps the two equal."""

if TYPE_CHECKING:
    import dagster as dg

    from pipelines.impact.estimators import Estimate
    from pipelines.impact.gate import Verdict


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def cmd_generate(args: argparse.Namespace) -> int:
    from pipelines.synthetic.exports import write_landing
    from pipelines.synthetic.federation import FederationSpec, generate_federation

    out = Path(args.out).resolve() if args.out else load_settings().data_dir
    landing = out / "landing"
    if landing.exists() and any(landing.iterdir()):
        if not args.force:
            _say(f"error: {landing} already holds files; pass --force to replace them")
            return 2
        shutil.rmtree(landing)
    spec = FederationSpec(
        agencies=args.agencies,
        persons=args.persons,
        months=args.months,
        seed=args.seed,
        end_date=date.fromisoformat(args.end_date),
        scenario=args.scenario,
        null=args.null,
        history_months=args.history_months,
    )
    try:
        if args.crisis:
            spec = replace(spec, crisis=Crisis.parse(args.crisis))
        spec.validate()
    except ValueError as exc:
        _say(f"error: {exc}")
        return 2
    started = time.perf_counter()
    federation = generate_federation(spec, progress=lambda m: _say(f"simulating {m}"))
    if args.format != "mixed":
        federation.export_format = dict.fromkeys(federation.export_format, args.format)
    files = write_landing(federation, out, progress=lambda m: _say(f"writing {m}"))
    rows = sum(federation.ground_truth["rows"].values())
    _say(
        f"wrote {len(files)} files ({rows:,} rows) for {spec.agencies} agencies ({spec.scenario}"
        f"{', null' if spec.null else ''}) under {landing} "
        f"and the ground truth to {out / 'ground_truth.json'} in {time.perf_counter() - started:.1f} s"
    )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import json

    from pipelines.bench.report import render
    from pipelines.bench.runner import run_benchmark

    points = sorted(set(args.persons))
    if args.engine:  # the pipeline's task reads it when its run starts (docs/scale-out.md)
        os.environ["PARCOURS_ENGINE"] = args.engine
    out = Path(args.out).resolve()
    work = Path(args.work).resolve() if args.work else load_settings().data_dir / "bench"
    notes = project_root() / "docs" / "benchmarks-notes.md"
    if args.from_results:
        results = json.loads(Path(args.from_results).read_text(encoding="utf-8"))
    else:
        _say(f"benchmark points {', '.join(f'{p:,}' for p in points)} persons; data in {work}; results in {out}")
        try:
            results = run_benchmark(
                points,
                work,
                args.runs,
                args.warmup,
                _say,
                None if args.no_dashboard else points[-1],
                args.single_run_from,
                demo=not args.no_demo,
                tasks=args.tasks,
            )
        except (RuntimeError, ValueError) as exc:
            _say(f"error: {exc}")
            return 1
    results.setdefault("engine", args.engine or os.environ.get("PARCOURS_ENGINE") or "duckdb")
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmarks.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    guide = notes.read_text(encoding="utf-8") if notes.exists() else ""
    (out / "benchmarks.md").write_text(render(results, guide), encoding="utf-8")
    _say(f"wrote {out / 'benchmarks.md'} and {out / 'benchmarks.json'} in {results['wall_seconds'] / 60:.1f} min")
    return 0


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    """The base folder option of every command that reads or writes a federation's data."""
    parser.add_argument("--data-dir", help="base folder (default: PARCOURS_DATA_DIR or data/generated)")


DAGSTER_YAML = "telemetry:\n  enabled: false\n"
"""A new ``DAGSTER_HOME``'s settings: Dagster's usage statistics off (nothing leaves this machine, and no
banner asks about it in the middle of a run)."""


def _dagster_instance() -> dg.DagsterInstance:
    """Dagster's local storage under ``DAGSTER_HOME`` when set (created if missing), else in memory.

    The local storage keeps the run history that ``dagster dev`` shows, at a price: Dagster writes each
    of a run's few hundred events to SQLite as it comes (about 10 s a run on this project's machine).
    """
    import dagster as dg

    home = os.environ.get("DAGSTER_HOME", "").strip()
    if not home:
        return dg.DagsterInstance.ephemeral()
    Path(home).mkdir(parents=True, exist_ok=True)
    settings = Path(home) / "dagster.yaml"
    if not settings.exists() and not settings.with_suffix(".yml").exists():
        settings.write_text(DAGSTER_YAML, encoding="utf-8")
    return dg.DagsterInstance.get()


def cmd_run(args: argparse.Namespace) -> int:
    from pipelines.resources import ParcoursResource

    resource = ParcoursResource(
        data_dir=args.data_dir or "",
        landing_dir=args.landing or "",
        warehouse_path=args.warehouse or "",
        serving_path=args.serving or "",
        data_cutoff=args.data_cutoff or "",
        engine_kind=args.engine or "",
        release=args.release or "",
    )
    try:
        settings = resource.settings()
        engine = resource.engine_config()
    except ValueError as exc:
        _say(f"error: {exc}")
        return 2
    if not args.quiet:
        where = engine.spark_remote or engine.spark_master
        _say(
            f"landing: {settings.landing_dir}\nwarehouse: {settings.warehouse_path}\nserving: {settings.serving_path}"
            f"\nengine: {engine.kind}{f' ({where})' if engine.kind == 'spark' else ''}"
        )
    started = time.perf_counter()
    from quality.suites_process import start_ahead

    start_ahead()  # Great Expectations is imported in the suites' process while Dagster loads here
    from pipelines.run import run_pipeline  # Dagster and the libraries load here, after the arguments are checked

    instance = _dagster_instance()
    if _process_ends_with_the_command:
        _out_of_the_collectors_reach()
    if args.verbose:
        outcome = run_pipeline(resource, instance=instance, log_level="INFO")
    else:
        outcome = run_pipeline(
            resource,
            instance=instance,
            log_level="OFF",
            progress=_say,
            live=sys.stderr.isatty(),
            stage_lines=not args.quiet,
        )
    elapsed = time.perf_counter() - started
    if not outcome.success:
        _say(f"\nparcours run failed after {elapsed:.1f} s.")
        for failure in outcome.failures:
            _say(f"- {failure}")
        for check in outcome.failed_checks:
            _say(f"- blocking check failed: {check}")
        return 1
    for warning in outcome.warnings:
        _say(f"warning: a non-blocking check failed: {warning}")
    for leftover in outcome.removed_leftovers:
        _say(f"removed {leftover}, left behind by an interrupted publication")
    if outcome.files_refused:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(outcome.files_refused.items()))
        _say(f"warning: files not fully accepted in this run: {counts} (see the quality report and raw_quarantine)")
    held_back = (
        f" ({outcome.library_messages} library warnings held back: --verbose shows them)"
        if outcome.library_messages
        else ""
    )
    _say(
        f"\nparcours run: {len(outcome.materialized)} assets materialised in {elapsed:.1f} s; "
        f"dashboards read {settings.serving_path}{held_back}"
    )
    return 0


EXIT_ALL_ACCEPTED = 0
EXIT_SOME_REFUSED = 1
EXIT_COULD_NOT_RUN = 2
FULLY_ACCEPTED = frozenset({"accepted", "duplicate", "superseded"})


def ingest_exit_status(statuses: list[str]) -> int:
    """0 when every file was accepted (or already received); 1 when a row or a file was refused."""
    return EXIT_ALL_ACCEPTED if all(s in FULLY_ACCEPTED for s in statuses) else EXIT_SOME_REFUSED


def cmd_ingest(args: argparse.Namespace) -> int:
    import json
    from datetime import date as date_type

    from pipelines import warehouse
    from pipelines.contract import load_contract
    from pipelines.ingest.config import ConfigError, load_agencies_config
    from pipelines.ingest.pseudonyms import PseudonymKeyError, load_key
    from pipelines.ingest.service import ingest_files, resolve_paths

    try:
        settings = load_settings(warehouse_path=Path(args.warehouse).resolve() if args.warehouse else None)
        key = load_key()
        if args.config and not Path(args.config).is_file():  # a mistyped path must not read as "no overrides"
            raise FileNotFoundError(f"no such configuration file: {args.config}")
        config = load_agencies_config(Path(args.config) if args.config else settings.agencies_config)
        files = resolve_paths([Path(p) for p in args.paths])
    except (PseudonymKeyError, ConfigError, FileNotFoundError, ValueError) as exc:
        _say(f"error: {exc}")
        return EXIT_COULD_NOT_RUN
    progress = None if args.json else _say
    try:
        with warehouse.connect(settings.warehouse_path) as con:
            today = settings.today or date_type.today()
            reports = ingest_files(con, files, load_contract(), key, today, config, progress)
    except (warehouse.Error, OSError) as exc:
        # The warehouse itself (locked by another writer, disk full): nothing was written.
        _say(f"error: cannot write the warehouse {settings.warehouse_path}: {type(exc).__name__}; nothing was ingested")
        return EXIT_COULD_NOT_RUN
    for report in reports:
        if args.json:
            print(json.dumps(report.as_json(), ensure_ascii=False), flush=True)
        else:
            print(f"{report.status:<10} {report.message}")
    return ingest_exit_status([r.status for r in reports])


def cmd_estimate(args: argparse.Namespace) -> int:
    import json

    import polars as pl

    from pipelines.impact.estimators import EstimationError, estimate_effect
    from pipelines.impact.gate import finite_json
    from pipelines.presentation.verdict import render

    path = Path(args.data)
    try:
        if path.suffix.lower() == ".parquet":
            frame = pl.read_parquet(path)
        else:
            frame = pl.read_csv(path, infer_schema_length=10_000)
    except (OSError, pl.exceptions.PolarsError) as exc:
        _say(f"error: cannot read {path}: {type(exc).__name__}")
        return 2
    covariates = [c.strip() for c in args.covariates.split(",") if c.strip()]
    missing = [c for c in [args.treatment, args.outcome, *covariates] if c not in frame.columns]
    if missing:
        _say(f"error: {path} has no column(s) {', '.join(missing)}")
        return 2
    columns = [args.treatment, args.outcome, *covariates]
    complete = frame.select(columns).drop_nulls()
    dropped = frame.height - complete.height
    try:
        numbers = complete.select(pl.all().cast(pl.Float64, strict=True))
        result = estimate_effect(
            numbers[args.outcome].to_numpy(),
            numbers[args.treatment].to_numpy().astype(int),
            numbers.select(covariates).to_numpy(),
            args.method,
            args.estimand,
            resamples=args.bootstrap,
            seed=args.seed,
            k=args.k,
            caliper=args.caliper,
            replace=not args.without_replacement,
        )
    except (EstimationError, pl.exceptions.PolarsError) as exc:
        _say(f"error: {exc}")
        return 2
    result.diagnostics.covariates = covariates
    result.details["rows_dropped_missing_values"] = dropped
    verdict = estimate_verdict(result, args.outcome)
    output = result.as_json()
    output["verdict"] = verdict.as_json()
    output["publishable"] = verdict.publishable
    if args.json:
        print(json.dumps(finite_json(output), indent=2))
    else:
        print(
            f"{result.estimand.upper()} by {result.method}: {result.estimate:,.3f} "
            f"(95% CI {result.ci_low:,.3f} to {result.ci_high:,.3f}); {result.n_treated} treated, "
            f"{result.n_control} controls; variance: {result.variance}\n{render(verdict, args.lang)}"
        )
    return 0


def estimate_verdict(result: Estimate, outcome: str) -> Verdict:
    """The gate's verdict on a generic estimate, with the default thresholds a study would have."""
    from pipelines.impact.gate import Effect, balance_checks, decide, size_checks
    from pipelines.impact.spec import Thresholds

    limits = Thresholds()
    checks = [
        *size_checks(limits, result.n_treated, result.n_control),
        *balance_checks(limits, result.diagnostics),
    ]
    return decide(checks, Effect(outcome, outcome, result.estimate, result.ci_low, result.ci_high), None)


def cmd_studies(args: argparse.Namespace) -> int:
    """Each served study's verdict, rendered from the verdict stored with it (never re-derived).

    ``--audience funders`` reads the funders' release only: its published studies, and each verdict as
    released to funders (the same decision, with the numbers a funder may see)."""
    from pipelines import warehouse
    from pipelines.impact.gate import Verdict
    from pipelines.presentation.registration import plan_lines
    from pipelines.presentation.verdict import headline, status, subgroup_marker
    from pipelines.publication.release import funder_path
    from pipelines.publication.study_tables import STUDIES

    serving = Path(args.serving).resolve() if args.serving else load_settings().serving_path
    source, table = (funder_path(serving), STUDIES) if args.audience == "funders" else (serving, "mart_impact_studies")
    if not source.exists():
        _say(f"error: no release at {source}: run `parcours run` first")
        return 2
    with warehouse.connect(source, read_only=True) as con:
        rows = warehouse.query(
            con,
            f"select * from {warehouse.quote_identifier(table)} where role in ('main', 'subgroup') "
            "order by study_order, study, role, dimension, dimension_value",
        )
        release = dict(con.execute("select key, value from serving_metadata").fetchall()).get("release", "")
    logs = _study_logs(serving, release)
    if release:
        print(f"{'Release' if args.lang == 'en' else 'Publication'} {release}")
    if rows.is_empty() and args.audience == "funders":
        print("No study is published to funders." if args.lang == "en" else "Aucune étude n'est publiée.")
    for row in rows.filter(rows["role"] == "main").iter_rows(named=True):
        verdict = Verdict.from_json(row["verdict"])
        print(f"{row['study']} (v{row['study_version']}, {row['design']})")
        print(f"  {status(verdict, args.lang)}")
        print(f"  {headline(verdict, args.lang)}")
        for line in plan_lines(logs.get(row["study"], []), args.lang):
            print(f"  {line}")
        if args.subgroups:
            for group in rows.filter((rows["study"] == row["study"]) & (rows["role"] == "subgroup")).iter_rows(
                named=True
            ):
                sub = Verdict.from_json(group["verdict"])
                marker = subgroup_marker(sub, args.lang)
                print(f"    {group['dimension']} = {group['dimension_value']}: {headline(sub, args.lang)}"
                      + (f" [{marker}]" if marker else ""))  # fmt: skip
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    from pipelines.impact.registration import RegistrationError, register

    try:
        entry = register(args.study, args.by)
    except (RegistrationError, ValueError) as exc:
        _say(f"error: {exc}")
        return 1
    _say(f"{entry.study} registered on {entry.at} by {entry.by} (plan {entry.sha256[:12]}, version {entry.version})")
    return 0


def cmd_amend(args: argparse.Namespace) -> int:
    from pipelines.impact.registration import RegistrationError, amend

    try:
        entry = amend(args.study, args.reason, args.by)
    except (RegistrationError, ValueError) as exc:
        _say(f"error: {exc}")
        return 1
    _say(f"{entry.study} amended on {entry.at} by {entry.by} (plan {entry.sha256[:12]}): {entry.reason}")
    return 0


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir).resolve() if args.data_dir else load_settings().data_dir


def cmd_releases(args: argparse.Namespace) -> int:
    import json

    from pipelines.operations.releases import list_releases, releases_dir

    found = list_releases(releases_dir(_data_dir(args)))
    if args.json:
        keys = ("name", "published_at", "data_cutoff", "run_id", "contract_version", "code_version")
        print(json.dumps([{k: m.get(k) for k in keys} for m in found], indent=2))
        return 0
    if not found:
        print("No release yet: `parcours run` publishes one.")
        return 0
    print(f"{'release':<12}{'published at':<28}{'data cut-off':<14}{'code':<14}{'files':>6}  amendments")
    for m in found:
        amended = sum(1 for s in m.get("studies", []) for e in s.get("log", []) if e.get("event") == "amended")
        commit = str(m.get("code_version", {}).get("commit", ""))[:12]
        current = sum(1 for f in m.get("landing_files", []) if f.get("status") != "superseded")
        print(f"{m['name']:<12}{m.get('published_at', ''):<28}{m.get('data_cutoff', ''):<14}{commit:<14}"
              f"{current:>6}  {amended}")  # fmt: skip
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    import tempfile

    from pipelines.operations.releases import ReleaseError, release_path, releases_dir
    from pipelines.operations.reproduce import reproduce

    try:
        release = release_path(releases_dir(_data_dir(args)), args.release)
    except ReleaseError as exc:
        _say(f"error: {exc}")
        return 2
    prefix = f"reproduce-{args.release}-"
    work = Path(args.work_dir).resolve() if args.work_dir else Path(tempfile.mkdtemp(prefix=prefix))
    inputs = Path(args.inputs).resolve() if args.inputs else None
    _say(f"rebuilding {args.release} in {work}")
    report = reproduce(release, work, inputs, _say)
    for note in report.notes:
        _say(f"note: {note}")
    for failure in report.failures:
        _say(f"error: {failure}")
    if report.failures:
        return 2
    if report.differing:
        _say(f"{args.release}: {len(report.differing)} of {report.tables_compared} tables differ:")
        for table in report.differing:
            _say(f"- {table}")
        return 1
    exact = report.tables_compared - len(report.within_rounding)
    _say(f"{args.release} reproduced: {exact} of its {report.tables_compared} tables are the same bit for bit")
    if report.within_rounding:
        _say("the same within floating-point rounding (sums of doubles on several threads: docs/operations.md):")
        for table in report.within_rounding:
            _say(f"- {table}")
    return 0


def _study_logs(serving: Path, release: str) -> dict[str, list[dict[str, str]]]:
    """Each study's registration log as kept with the release in service (empty when it is not kept)."""
    from pipelines.impact.registration import released_log
    from pipelines.operations.releases import manifest_for

    manifest = manifest_for(serving)
    if manifest is None or manifest.get("name") != release:
        return {}
    return {str(s["name"]): released_log(s.get("log", [])) for s in manifest.get("studies", [])}


def cmd_purge_audit(args: argparse.Namespace) -> int:
    from pipelines.operations.audit_retention import purge_audit_log, retention_days

    try:
        days = args.keep_days or retention_days()
    except ValueError as exc:
        _say(f"error: {exc}")
        return 2
    env = dict(os.environ)
    if args.data_dir:
        env["PARCOURS_DATA_DIR"] = str(Path(args.data_dir).resolve())
    path = load_settings(env).audit_log
    kept, removed = purge_audit_log(path, days)
    _say(f"{path}: {removed} entries older than {days} days removed, {kept} kept")
    return 0


def cmd_contract_doc(args: argparse.Namespace) -> int:
    from pipelines.contract import load_contract, render_markdown

    text = render_markdown(load_contract())
    target = project_root() / "docs" / "data-contract.md"
    if args.check:
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            _say(f"{target} is out of date: run `parcours contract-doc`")
            return 1
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    _say(f"wrote {target}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parcours",
        description="Measure the impact of care management, from agency exports to funder dashboards.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    generate = commands.add_parser(
        "generate",
        help="write a synthetic federation (agency exports and ground truth)",
        description="Simulate a federation with confounded assignment and known true effects, and write "
        "each agency's export into OUT/landing/<agency>/ in the formats agencies send.",
    )
    generate.add_argument("--out", help="output folder (default: PARCOURS_DATA_DIR or data/generated)")
    generate.add_argument("--agencies", type=_positive, default=12, help="number of agencies (default 12, at least 3)")
    generate.add_argument("--persons", type=_positive, default=3000, help="number of persons (default 3000)")
    generate.add_argument(
        "--months",
        type=_positive,
        default=24,
        help="months before the extraction date in which episodes start, at least 3 (default 24)",
    )
    generate.add_argument(
        "--history-months",
        type=_positive,
        default=24,
        help="months of events sent before each episode starts, at least 12 (default 24)",
    )
    generate.add_argument(
        "--scenario",
        default="baseline",
        help=f"synthetic world: {', '.join(SCENARIOS)}, or several joined with + (default baseline; "
        "docs/validation.md describes each)",
    )
    generate.add_argument(
        "--null", action="store_true", help="care management changes no outcome (the scenario's null twin)"
    )
    generate.add_argument(
        "--crisis",
        help="the referral crisis of crisis_enrolment worlds, KIND:FIRST-LAST[:MULTIPLIER[:DAYS_AFTER]]: kind "
        "hospital, fall or carer, starting FIRST to LAST days before the index date, rates times MULTIPLIER "
        "(default 4), going on DAYS_AFTER days after the index date (default 0); default hospital:14-120",
    )
    generate.add_argument("--seed", type=int, default=2026, help="random seed (default 2026)")
    generate.add_argument("--end-date", default="2026-06-30", help="extraction date, ISO (default 2026-06-30)")
    generate.add_argument(
        "--format",
        choices=["mixed", *EXPORT_FORMATS],
        default="mixed",
        help="every agency's export format (default mixed: each format in turn; an Excel sheet holds at most "
        "1,048,576 rows, so large federations use csv_utf8)",
    )
    generate.add_argument("--force", action="store_true", help="replace an existing landing folder")
    generate.set_defaults(func=cmd_generate)

    run = commands.add_parser(
        "run",
        help="materialise every asset: landing files to serving snapshot",
        description="Run the whole pipeline in this process, without a UI. Exit status: 0 published (rows "
        "or files refused, if any, are listed as warnings); 1 the run failed or a blocking check stopped it, "
        "nothing was published; 2 it could not start (arguments, configuration).",
    )
    _add_data_dir(run)
    run.add_argument("--landing", help="landing folder (default: DATA_DIR/landing)")
    run.add_argument("--warehouse", help="working DuckDB file (default: DATA_DIR/warehouse/parcours.duckdb)")
    run.add_argument("--serving", help="serving snapshot (default: DATA_DIR/serving/parcours_serving.duckdb)")
    run.add_argument("--data-cutoff", help="date up to which exports are complete (default: derived)")
    run.add_argument(
        "--release",
        help="name of the release this run publishes, e.g. 2026-Q3 (default: PARCOURS_RELEASE, else the data "
        "cut-off's quarter, with .2, .3... when taken); a name is never reused",
    )
    run.add_argument(
        "--engine",
        choices=["duckdb", "spark"],
        help="engine of the models, checks and study queries (default: PARCOURS_ENGINE, else duckdb; "
        "Spark's master or Connect URL from PARCOURS_SPARK_MASTER or PARCOURS_SPARK_REMOTE: docs/scale-out.md)",
    )
    loudness = run.add_mutually_exclusive_group()
    loudness.add_argument("--quiet", action="store_true", help="show warnings and errors only")
    loudness.add_argument(
        "--verbose",
        action="store_true",
        help="Dagster's own log of every step and event, and the libraries' warnings, instead of a line per stage",
    )
    run.set_defaults(func=cmd_run)

    ingest = commands.add_parser(
        "ingest",
        help="ingest agency files or folders into the warehouse and report on each file",
        description="Read, check, quarantine and load the given files (a file's agency is its folder's name; a "
        "folder holds agency folders or is one). Never stops on a bad file: every file gets a status "
        "(accepted, partial, rejected, duplicate, superseded) and a message, formats it cannot read included. "
        "Exit status: 0 every file accepted; 1 some rows or files refused; 2 could not run (arguments, key, "
        "configuration, warehouse).",
    )
    ingest.add_argument("paths", nargs="+", metavar="PATH", help="files or folders")
    ingest.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per line, one line per file (JSON Lines): file, sha256, status, rows_in, "
        "rows_accepted, rows_quarantined, reasons, message",
    )
    ingest.add_argument("--warehouse", help="working DuckDB file (default: PARCOURS_WAREHOUSE or data/generated)")
    ingest.add_argument("--config", help="per-agency reading overrides (default: <landing>/agencies.yaml)")
    ingest.set_defaults(func=cmd_ingest)

    estimate = commands.add_parser(
        "estimate",
        help="estimate a treatment effect on any table (matching, weighting, doubly robust)",
        description="Estimate the effect of a 0/1 treatment on an outcome, adjusting for covariates, from a CSV "
        "or Parquet file. Rows with a missing value in a used column are dropped and counted.",
    )
    estimate.add_argument("--data", required=True, help="CSV or Parquet file")
    estimate.add_argument("--treatment", required=True, help="0/1 treatment column")
    estimate.add_argument("--outcome", required=True, help="outcome column")
    estimate.add_argument("--covariates", required=True, help="comma-separated covariate columns")
    estimate.add_argument("--method", choices=["match", "ipw", "overlap", "aipw"], default="aipw")
    estimate.add_argument("--estimand", choices=["att", "ate"], default="att")
    estimate.add_argument("--bootstrap", type=_positive, default=1000, help="bootstrap resamples (default 1000)")
    estimate.add_argument("--seed", type=int, default=0)
    estimate.add_argument("--k", type=_positive, default=1, help="matches per treated unit (default 1)")
    estimate.add_argument("--caliper", type=float, default=0.2, help="caliper in SD of the logit (default 0.2)")
    estimate.add_argument("--without-replacement", action="store_true", help="match without replacement")
    estimate.add_argument("--json", action="store_true", help="print one JSON object (with the gate's verdict)")
    estimate.add_argument("--lang", choices=["fr", "en"], default="fr", help="language of the verdict (default fr)")
    estimate.set_defaults(func=cmd_estimate)

    studies = commands.add_parser(
        "studies",
        help="print each served impact study's verdict (publishable or not, and why)",
        description="Read the serving snapshot and print every study's verdict as the dashboards show it.",
    )
    studies.add_argument("--serving", help="serving snapshot (default: PARCOURS_SERVING or data/generated)")
    studies.add_argument("--lang", choices=["fr", "en"], default="fr", help="language (default fr)")
    studies.add_argument("--subgroups", action="store_true", help="also print each subgroup's verdict")
    studies.add_argument(
        "--audience",
        choices=["analysts", "funders"],
        default="analysts",
        help="analysts: every study from the serving snapshot (default); funders: the funders' release only",
    )
    studies.set_defaults(func=cmd_studies)

    bench = commands.add_parser(
        "bench",
        help="time the whole pipeline and its peers (pandas, Polars, bare DuckDB) on generated federations",
        description="Generate federations of each size, run the pipeline and its peers in rotating order "
        "(one process per run, warm-up rounds discarded, medians kept), measure dashboard latency at the largest "
        "size, and write benchmarks.md and benchmarks.json.",
    )
    bench.add_argument(
        "--persons", type=_positive, nargs="+", default=[10_000, 100_000, 1_000_000], help="federation sizes"
    )
    bench.add_argument("--runs", type=_positive, default=5, help="measured rounds per size (default 5)")
    bench.add_argument("--warmup", type=int, default=1, help="warm-up rounds per size, discarded (default 1)")
    bench.add_argument(
        "--single-run-from",
        type=_positive,
        metavar="PERSONS",
        help="sizes from this one up get one measured run and no warm-up (the report says so)",
    )
    bench.add_argument("--work", help="folder for the generated federations (default: DATA_DIR/bench)")
    bench.add_argument(
        "--engine",
        choices=["duckdb", "spark"],
        help="engine of the pipeline's models, checks and study queries (default: PARCOURS_ENGINE, else duckdb)",
    )
    bench.add_argument("--out", default="docs", help="where benchmarks.md and benchmarks.json go (default docs)")
    bench.add_argument("--no-dashboard", action="store_true", help="skip the dashboard latency measurement")
    bench.add_argument("--no-demo", action="store_true", help="skip the demo federation (3,000 persons) runs")
    bench.add_argument(
        "--tasks",
        nargs="+",
        metavar="TASK",
        help="only these tasks at each point (pipeline, floor_ingest, pandas_ingest, floor_models, outcome_duckdb, "
        "outcome_polars, outcome_pandas, impact); the largest points may need --tasks pipeline",
    )
    bench.add_argument(
        "--from-results", metavar="JSON", help="measure nothing: write benchmarks.md again from a results file"
    )
    bench.set_defaults(func=cmd_bench)

    register = commands.add_parser(
        "register",
        help="register a study's plan (its hash, the date, who) before its outcomes are first computed",
    )
    register.add_argument("study", help="the study's name (data/studies/*.yaml)")
    register.add_argument("--by", required=True, help="who registers it")
    register.set_defaults(func=cmd_register)

    amend = commands.add_parser(
        "amend", help="record a change to a registered study, with its reason (shown with every result)"
    )
    amend.add_argument("study")
    amend.add_argument("--reason", required=True, help="why the plan changed")
    amend.add_argument("--by", required=True, help="who changed it")
    amend.set_defaults(func=cmd_amend)

    releases = commands.add_parser("releases", help="list the kept releases, oldest first")
    _add_data_dir(releases)
    releases.add_argument("--json", action="store_true")
    releases.set_defaults(func=cmd_releases)

    reproduce = commands.add_parser(
        "reproduce",
        help="rebuild a release from its kept inputs and compare every table",
        description="Replay the release's ingestion batches from the kept inputs, run the pipeline with its "
        "study files and parameters, and compare every table of every file with the release. Exit status: 0 "
        "the same, bit for bit; 1 tables differ (listed); 2 it could not be rebuilt.",
    )
    reproduce.add_argument("release", help="the release's name (parcours releases)")
    _add_data_dir(reproduce)
    reproduce.add_argument("--work-dir", help="an empty folder for the rebuild (default: a new temporary one)")
    reproduce.add_argument("--inputs", help="the kept inputs, when moved (default: where the release says)")
    reproduce.set_defaults(func=cmd_reproduce)

    purge = commands.add_parser(
        "purge-audit",
        help="delete the dashboards' audit entries older than the retention (12 months; CNIL: 6 to 12)",
    )
    _add_data_dir(purge)
    purge.add_argument(
        "--keep-days", type=int, choices=range(183, 367), metavar="183..366",
        help="days kept (default: PARCOURS_AUDIT_RETENTION_DAYS, else 365)",
    )  # fmt: skip
    purge.set_defaults(func=cmd_purge_audit)

    doc = commands.add_parser("contract-doc", help="write docs/data-contract.md from quality/contract.yaml")
    doc.add_argument("--check", action="store_true", help="fail if the page is out of date instead of writing it")
    doc.set_defaults(func=cmd_contract_doc)

    report = commands.add_parser(
        "disclosure-report",
        help="per audience of the last release: cells released, perturbed and hidden, what the auditor recovered",
    )
    report.add_argument("--data-dir", help="where `parcours run` wrote (default: PARCOURS_DATA_DIR)")
    report.add_argument("--serving", help="the serving snapshot the release sits beside")
    report.add_argument("--json", action="store_true", help="print the release summary as JSON")
    report.set_defaults(func=cmd_disclosure_report)
    return parser


def cmd_disclosure_report(args: argparse.Namespace) -> int:
    """Counts of cells only (never a value): what each audience was released and what the attacker got."""
    import json

    from pipelines.publication.release import summary_path

    env = dict(os.environ)
    if args.data_dir:
        env |= {"PARCOURS_DATA_DIR": str(Path(args.data_dir).resolve()), "PARCOURS_SERVING": ""}
    serving = Path(args.serving).resolve() if args.serving else load_settings(env).serving_path
    path = summary_path(serving)
    if not path.exists():
        _say(f"error: no release summary at {path}: run `parcours run` first")
        return 1
    summary = json.loads(path.read_text(encoding="utf-8"))
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"Release of {summary['published_at']} (no count under {summary['min_cell']} released)")
    print(
        f"{'audience':<16}{'cells':>8}{'released':>10}{'perturbed':>11}{'hidden':>8}{'attacked':>10}{'recovered':>11}"
    )
    for a in summary["audiences"]:
        print(
            f"{a['audience']:<16}{a['cells']:>8}{a['released']:>10}{a['perturbed']:>11}{a['hidden']:>8}"
            f"{a['targets']:>10}{a['recovered']:>11}"
        )
    print(
        f"Persons (care-managed, after enrolment) whose territory has a rate on the funders' map: "
        f"{summary['persons_on_map_region']:.1%} by région, {summary['persons_on_map_departement']:.1%} by département"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:
        # The reader stopped early (`parcours studies | head`): not an error of ours. Python would complain
        # again when flushing stdout at exit, so stdout is pointed at nothing first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


_process_ends_with_the_command = False
"""Set by ``console_main``: the process is the command's alone (not a test session calling ``main``)."""


def _out_of_the_collectors_reach() -> None:
    """Everything alive now (Dagster's, DuckDB's and Polars' modules, classes and functions, just imported)
    lives until the process ends: frozen (``gc.freeze``), a full collection of the run no longer walks it
    again. The demo's ``parcours run`` makes six full collections: 0.53 CPU-s before, 0.24 after. Only the
    command's own process does it: in a test session, cyclic garbage of earlier tests would be kept for good.
    What the run creates afterwards, its garbage included, is collected as before."""
    import gc

    gc.freeze()


def console_main() -> None:
    """The ``parcours`` command: ``main``, then out of the process without taking its objects apart.

    Once a run has printed its outcome, Python's own exit still frees the hundreds of thousands of objects
    Dagster, Polars and scikit-learn built (about 0.65 s of the demo's ``parcours run``, after the last
    line). Nothing of ours waits for that: the warehouse, the snapshots and the release are written and
    closed by then (each through its own context), so the process ends at once, after what an exit must do
    still: the threads we started finish, the ``atexit`` handlers run (temporary folders, the suites'
    process, logging), and the standard streams are flushed. Tests call ``main``, which returns."""
    global _process_ends_with_the_command
    _process_ends_with_the_command = True
    code = main()
    # What the interpreter's exit does first: pools' idle workers told to stop, then every thread joined
    # (joining them alone would wait forever on a pool nobody shut down).
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    _flush_standard_streams()
    os._exit(code)


def _flush_standard_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader that stopped early, or a stream already closed
            stream.flush()


if __name__ == "__main__":
    console_main()
