"""``docs/benchmarks.md`` from the results: tables, ratios, growth exponents and the targets."""

from __future__ import annotations

import math
from typing import Any

from pipelines.bench.runner import ROUND_TASKS

PIPELINE_STAGES = ["ingest", "quality", "models", "studies", "serving", "framework"]
PEER_TASKS = [t for t in ROUND_TASKS if t != "pipeline"]


def growth_exponent(points: list[dict[str, Any]], seconds: Any) -> float | None:
    """Slope of log(time) against log(persons) between the two largest points."""
    if len(points) < 2:
        return None
    a, b = points[-2], points[-1]
    ta, tb = seconds(a), seconds(b)
    if not ta or not tb or math.isnan(ta) or math.isnan(tb) or ta <= 0 or tb <= 0:
        return None
    return math.log(tb / ta) / math.log(b["persons"] / a["persons"])


def _stage(point: dict[str, Any], name: str) -> float:
    return float(point["tasks"]["pipeline"].get("stages", {}).get(name, 0.0))


def _task(point: dict[str, Any], name: str) -> float:
    """A task's median seconds; NaN where the point did not run it (``parcours bench --tasks``)."""
    task = point["tasks"].get(name)
    return float(task["seconds"]) if task else math.nan


def ran(point: dict[str, Any], *tasks: str) -> bool:
    """Whether the point ran every one of ``tasks`` (``parcours bench --tasks`` runs a subset)."""
    return all(t in point["tasks"] for t in tasks)


def _cell(point: dict[str, Any], task: str) -> str:
    """A task's median seconds for a table cell; empty where the point did not run it."""
    return f"{_task(point, task):.2f}" if ran(point, task) else ""


def _peak(task: dict[str, Any]) -> float:
    """A task's peak resident memory: of its processes together where sampled, else of its largest process."""
    return float(task.get("peak_tree_rss_mib", task["peak_rss_mib"]))


def _cpu(task: dict[str, Any]) -> str:
    """A task's median CPU seconds (every thread, user and system); empty for results measured before they were."""
    return f"{task['cpu_seconds']:,.1f}" if "cpu_seconds" in task else ""


def _load(task: dict[str, Any]) -> str:
    """The 1-minute load averages before and after each measured run: how shared the machine was."""
    return "; ".join(f"{a:g} → {b:g}" for a, b in task.get("load_average", []))


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _ratio(a: float, b: float) -> str:
    return "n/a" if not b else f"{a / b:.2f}×"


def targets(point: dict[str, Any], exponent: float | None) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) at one point; those that compare with the peers only where they ran."""
    total = _task(point, "pipeline")
    pipeline = point["tasks"]["pipeline"]
    # Results measured before the tree was sampled hold one process's maximum only, which the label says.
    peak = max(_peak(pipeline), 0)
    scope = "its processes together" if "peak_tree_rss_mib" in pipeline else "its largest process"
    own: list[tuple[str, str, bool | None]] = [
        ("whole pipeline under 2 minutes", f"{total:.1f} s", total < 120),
        ("studies stage under 30 s", f"{_stage(point, 'studies'):.1f} s", _stage(point, "studies") < 30),
        (f"pipeline peak memory under 4 GiB ({scope})", f"{peak / 1024:.2f} GiB", peak < 4 * 1024),
        ("growth exponent at most 1.05", _fmt(exponent), None if exponent is None else exponent <= 1.05),
        (
            "Great Expectations suites under 10% of ingestion",
            f"{_stage(point, 'quality'):.1f} s of {_stage(point, 'ingest'):.1f} s",
            _stage(point, "quality") < 0.1 * _stage(point, "ingest") if _stage(point, "quality") else None,
        ),
    ]
    models = _stage(point, "models")
    ingest = _stage(point, "ingest")
    # Each comparison where the tasks it compares ran: a large point may run a few peers only.
    compared: list[tuple[str, str, bool | None]] = []
    if ran(point, "floor_ingest", "floor_models", "outcome_duckdb"):
        floors = _task(point, "floor_ingest") + _task(point, "floor_models") + _task(point, "outcome_duckdb")
        compared.append(
            (
                "whole pipeline within 2× the floors + 5 s",
                f"{total:.1f} s vs {2 * floors + 5:.1f} s",
                total <= 2 * floors + 5,
            )
        )
    if ran(point, "floor_models"):
        compared.append(
            (
                "outcome models within 1.3× of bare DuckDB (same SQL files)",
                _ratio(models, _task(point, "floor_models")),
                models <= 1.3 * _task(point, "floor_models"),
            )
        )
    if ran(point, "outcome_duckdb", "outcome_pandas"):
        compared.append(
            (
                "outcome (SQL) at least 2× faster than pandas",
                _ratio(_task(point, "outcome_pandas"), _task(point, "outcome_duckdb")),
                _task(point, "outcome_pandas") >= 2 * _task(point, "outcome_duckdb"),
            )
        )
    if ran(point, "outcome_duckdb", "outcome_polars"):
        compared.append(
            (
                "outcome (SQL) at least 2× faster than Polars",
                _ratio(_task(point, "outcome_polars"), _task(point, "outcome_duckdb")),
                _task(point, "outcome_polars") >= 2 * _task(point, "outcome_duckdb"),
            )
        )
    if ran(point, "floor_ingest"):
        compared.append(
            (
                "ingestion within 2× of DuckDB read_csv",
                _ratio(ingest, _task(point, "floor_ingest")),
                ingest <= 2 * _task(point, "floor_ingest"),
            )
        )
    if ran(point, "pandas_ingest"):
        compared.append(
            (
                "ingestion at least 3× faster than the pandas script",
                _ratio(_task(point, "pandas_ingest"), ingest),
                3 * ingest <= _task(point, "pandas_ingest"),
            )
        )
    if ran(point, "impact"):
        impact = point["tasks"]["impact"].get("stages", {})
        matching = float(impact.get("matching", _task(point, "impact")))
        resampled = float(impact.get("aipw_1000_resamples", 0.0))
        compared.append(
            ("impact estimation (propensity, matching, valid interval) under 10 s", f"{matching:.1f} s", matching < 10)
        )
        compared.append(("doubly robust estimate, 1,000 bootstrap refits (no target)", f"{resampled:.1f} s", None))
    rows = [*own[:3], *compared, *own[3:]]
    dashboard = point.get("dashboard")
    if dashboard:
        rows.append(
            (
                "dashboard query under 50 ms p95",
                f"{dashboard['query_p95_ms_worst']:.0f} ms",
                dashboard["query_p95_ms_worst"] < 50,
            )
        )
        rows.append(
            (
                "dashboard rerun under 200 ms p95",
                f"{dashboard['rerun_p95_ms_worst']:.0f} ms",
                dashboard["rerun_p95_ms_worst"] < 200,
            )
        )
    return rows


DEMO_TARGET_S = 10.0


def demo_lines(demo: dict[str, Any] | None) -> list[str]:
    """The demo federation's row: stages, the run, and the whole process (start-up and imports included)."""
    if not demo:
        return []
    pipe = demo["pipeline"]
    stages = pipe.get("stages", {})
    process = pipe.get("process_seconds", pipe["seconds"])
    met = "yes" if process < DEMO_TARGET_S else "**no**"
    return [
        "",
        f"The demo federation ({demo['persons']:,} persons, `parcours generate`'s defaults, every export format), "
        f"{demo['warmup']} warm-up + {demo['runs']} measured: "
        + ", ".join(f"{name} {stages.get(name, 0.0):.1f} s" for name in PIPELINE_STAGES)
        + f"; run {pipe['seconds']:.1f} s; the whole process (Python start-up and imports included) "
        f"{process:.1f} s against a target of {DEMO_TARGET_S:.0f} s: met {met}; "
        + (f"{_cpu(pipe)} CPU-s, load average {_load(pipe)}; " if "cpu_seconds" in pipe else "")
        + f"peak {_peak(pipe):,.0f} MiB.",
    ]


def render(results: dict[str, Any], guide: str) -> str:
    points = results["points"]
    m = results["machine"]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `parcours bench` (`make bench`); the numbers below come from "
        f"`benchmarks.json`, measured {results['started_at']} with `{results['command']}`.",
        "",
        "## Machine",
        "",
        f"- {m['cpu']}, {m['cores']} cores, {m['memory_mib']:,} MiB; {m['os']}; Python {m['python']}",
        "- " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        "- rounds per point (warm-up discarded, medians of the measured): "
        + "; ".join(
            f"{p['persons']:,}: {p.get('warmup', results['warmup'])} warm-up + "
            f"{p.get('runs', results['runs'])} measured"
            for p in points
        )
        + f"; whole benchmark {results['wall_seconds'] / 60:.1f} min",
        "",
        "## Whole pipeline, by stage (median seconds)",
        "",
        "| persons | rows | generate | ingest | quality | models | studies | serving | framework | pipeline "
        "| rows/s | pipeline CPU s | load average | peak RSS |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for p in points:
        pipe = p["tasks"]["pipeline"]
        lines.append(
            f"| {p['persons']:,} | {p['rows']:,} | {_task(p, 'generate'):.1f} | "
            + " | ".join(f"{_stage(p, s):.1f}" if "stages" in pipe else "" for s in PIPELINE_STAGES)
            + f" | {pipe['seconds']:.1f} | {p['rows'] / pipe['seconds']:,.0f} | {_cpu(pipe)} | {_load(pipe)} "
            f"| {_peak(pipe):,.0f} MiB |"
        )
    lines += demo_lines(results.get("demo"))
    lines += [
        "",
        "`framework` is the pipeline's wall time not spent inside any step (Dagster's own work between steps).",
        "",
        "## Peers on the same files (median seconds, ratio to the floor and to pandas)",
        "",
        "| persons | stage | Parcours | floor (bare DuckDB) | pandas | Polars | Parcours / floor "
        "| Parcours / pandas | same numbers |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for p in [p for p in points if any(t in p["tasks"] for t in PEER_TASKS)]:
        ingest = _stage(p, "ingest")
        if ran(p, "floor_ingest") or ran(p, "pandas_ingest"):
            same_rows = ("yes" if p["tasks"]["pandas_ingest"].get("check") else "NO") if ran(p, "pandas_ingest") else ""
            lines.append(
                f"| {p['persons']:,} | ingestion (read, checks, quarantine) | {ingest:.2f} "
                f"| {_cell(p, 'floor_ingest')} | {_cell(p, 'pandas_ingest')} | "
                f"| {_ratio(ingest, _task(p, 'floor_ingest')) if ran(p, 'floor_ingest') else ''} "
                f"| {_ratio(ingest, _task(p, 'pandas_ingest')) if ran(p, 'pandas_ingest') else ''} "
                f"| {same_rows} |"
            )
        if ran(p, "floor_models"):
            models = _stage(p, "models")
            lines.append(
                f"| {p['persons']:,} | all SQL models | {models:.2f} | {_task(p, 'floor_models'):.2f} | | "
                f"| {_ratio(models, _task(p, 'floor_models'))} | | same SQL |"
            )
        if ran(p, "outcome_duckdb", "outcome_pandas", "outcome_polars"):
            same = all(p["tasks"][f"outcome_{k}"].get("check") for k in ("duckdb", "polars", "pandas"))
            lines.append(
                f"| {p['persons']:,} | hospitalisation outcome | | {_task(p, 'outcome_duckdb'):.2f} "
                f"| {_task(p, 'outcome_pandas'):.2f} | {_task(p, 'outcome_polars'):.2f} | | "
                f"{_ratio(_task(p, 'outcome_duckdb'), _task(p, 'outcome_pandas'))} (SQL) | {'yes' if same else 'NO'} |"
            )
        if ran(p, "impact"):
            impact = p["tasks"]["impact"]
            stages = impact.get("stages", {})
            lines.append(
                f"| {p['persons']:,} | impact: propensity, matching, Abadie-Imbens interval "
                f"| {stages.get('matching', impact['seconds']):.2f} | | | | | | "
                f"interval holds the estimate: {'yes' if impact.get('check') else 'NO'} |"
            )
            if "aipw_1000_resamples" in stages:
                lines.append(
                    f"| {p['persons']:,} | impact: doubly robust, 1,000 bootstrap refits "
                    f"| {stages['aipw_1000_resamples']:.2f} | | | | | | |"
                )
    lines += ["", "## Growth exponents (slope of log time against log persons, two largest points)", ""]
    if len(points) >= 2:
        lines += ["| measure | exponent |", "|---|---:|"]
        measures: dict[str, Any] = {
            "whole pipeline": lambda p: _task(p, "pipeline"),
            **{f"stage: {s}": (lambda p, s=s: _stage(p, s)) for s in PIPELINE_STAGES[:-1]},
            **{t: (lambda p, t=t: _task(p, t)) for t in PEER_TASKS},
        }
        lines += [f"| {name} | {_fmt(growth_exponent(points, f))} |" for name, f in measures.items()]
    else:
        lines.append("One point only: no exponent.")
    largest = points[-1]
    exponent = growth_exponent(points, lambda p: _task(p, "pipeline"))
    lines += [
        "",
        f"## Targets at {largest['persons']:,} persons",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    lines += [
        f"| {name} | {value} | {'n/a' if met is None else ('yes' if met else '**no**')} |"
        for name, value, met in targets(largest, exponent)
    ]
    measured = next((p for p in points if p.get("dashboard")), None)
    dashboard = measured["dashboard"] if measured else None
    if measured and dashboard:
        lines += [
            "",
            f"## Dashboard latency (server side, AppTest, {measured['persons']:,} persons)",
            "",
            "| interaction | p50 | p95 |",
            "|---|---:|---:|",
        ]
        lines += [f"| {k} | {v['p50_ms']:.0f} ms | {v['p95_ms']:.0f} ms |" for k, v in dashboard["reruns"].items()]
        slowest = sorted(dashboard["queries"].items(), key=lambda kv: -kv[1]["p95_ms"])[:5]
        lines += [
            "",
            "Slowest uncached table reads (query behind an interaction):",
            "",
            "| table | p50 | p95 |",
            "|---|---:|---:|",
        ]
        lines += [f"| `{k}` | {v['p50_ms']:.1f} ms | {v['p95_ms']:.1f} ms |" for k, v in slowest]
    return "\n".join(lines) + "\n\n" + guide.strip() + "\n"
