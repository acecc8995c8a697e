"""Run the benchmark points: each task in its own process, peers in rotating order, medians kept.

For every point (persons): generate the federation once (timed), then ``warmup`` rounds that
are thrown away and ``runs`` measured rounds; each round runs every task once, starting one
task further along the list than the round before, so that no task always runs first on a
cold cache or last on a hot machine. Before each round the runner waits (up to a minute) until
less than a quarter of the cores are busy, and records the share it found.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from statistics import median
from typing import Any

ROUND_TASKS = [
    "pipeline",
    "floor_ingest",
    "pandas_ingest",
    "floor_models",
    "outcome_duckdb",
    "outcome_polars",
    "outcome_pandas",
    "impact",
]
PACKAGES = ["dagster", "duckdb", "polars", "pandas", "numpy", "pyarrow", "great-expectations", "streamlit"]


def machine() -> dict[str, Any]:
    memory = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) // 1024
    except OSError:
        pass
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_mib": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {p: _version(p) for p in PACKAGES},
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def busy_share(seconds: float = 3.0) -> float:
    """Share of all cores busy over the next ``seconds`` (from /proc/stat; 0 where it cannot be read).

    Unlike the load average, which our own last task keeps high for minutes, this sees only
    what runs now."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle and iowait
        return sum(fields), idle

    try:
        total_a, idle_a = sample()
        time.sleep(seconds)
        total_b, idle_b = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    total = total_b - total_a
    return 0.0 if total <= 0 else 1 - (idle_b - idle_a) / total


def wait_until_quiet(say: Callable[[str], None], limit_s: float = 60.0, threshold: float = 0.25) -> float:
    """The busy share of the cores once it is under ``threshold`` (a quarter: half a core of this
    2-core machine), or after ``limit_s``."""
    deadline = time.monotonic() + limit_s
    busy = busy_share()
    while busy >= threshold and time.monotonic() < deadline:
        say(f"  waiting for a quiet machine ({busy:.0%} of the cores busy)")
        time.sleep(7)
        busy = busy_share()
    return busy


def _tree_rss_kib(root: int) -> int:
    """Resident memory of ``root`` and every process descended from it, summed (kibibytes, from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # ended meanwhile
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier and pid not in tree]
        tree.update(frontier)
    total = 0
    for pid in tree:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total


class _TreeMemory:
    """The largest sum of resident memory of a task's process and its children, sampled every ``interval`` s:
    the operating system's maximum (``ru_maxrss``) is one process's, and the pipeline runs the contract suites
    in a child process beside its own."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.peak_kib = 0
        self._pid, self._interval = pid, interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak_kib = max(self.peak_kib, _tree_rss_kib(self._pid))
            self._done.wait(self._interval)

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return self.peak_kib / 1024


def run_task(task: str, data: Path, persons: int = 0) -> dict[str, Any]:
    """One task in a child process: its own result plus its peak RSS from the operating system."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        result_path = Path(handle.name)
    command = [sys.executable, "-m", "pipelines.bench.tasks", task, "--data", str(data), "--result", str(result_path)]
    if persons:
        command += ["--persons", str(persons)]
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603 (our own module)
    tree = _TreeMemory(process.pid)
    assert process.stderr is not None
    errors = process.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    tree_peak_mib = tree.stop()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"bench task {task} failed on {data}:\n{errors[-3000:]}")
    result = json.loads(result_path.read_text(encoding="utf-8"))
    result_path.unlink()
    result["peak_rss_mib"] = usage.ru_maxrss / 1024  # kilobytes on Linux
    result["peak_tree_rss_mib"] = max(tree_peak_mib, result["peak_rss_mib"])  # a sample may miss the top
    result["process_seconds"] = time.perf_counter() - started  # the task's own clock plus start-up and imports
    # CPU seconds (every thread, user and system) do not grow with the other work on a shared machine as
    # wall seconds do; the load average says how shared it was.
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    result["load_average"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
    return result


def _summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "seconds": median(s["seconds"] for s in samples),
        "runs": [round(s["seconds"], 3) for s in samples],
        "peak_rss_mib": max(s["peak_rss_mib"] for s in samples),
        "rows": samples[0].get("rows"),
    }
    if all("process_seconds" in s for s in samples):
        summary["process_seconds"] = median(s["process_seconds"] for s in samples)
    if all("peak_tree_rss_mib" in s for s in samples):
        summary["peak_tree_rss_mib"] = max(s["peak_tree_rss_mib"] for s in samples)
    if all("cpu_seconds" in s for s in samples):
        summary["cpu_seconds"] = median(s["cpu_seconds"] for s in samples)
        summary["load_average"] = [s["load_average"] for s in samples]
    if "check" in samples[0]:
        summary["check"] = all(s["check"] for s in samples)
    stages = {name for s in samples for name in s.get("stages", {})}
    if stages:
        summary["stages"] = {name: median(s["stages"].get(name, 0.0) for s in samples) for name in sorted(stages)}
    return summary


def run_point(
    persons: int,
    work: Path,
    runs: int,
    warmup: int,
    say: Callable[[str], None],
    dashboard: bool,
    tasks: list[str] | None = None,
) -> dict[str, Any]:
    """``tasks``: a subset of ``ROUND_TASKS`` (all by default); the peers need the pipeline's first run."""
    data = work / f"persons_{persons}"
    say(f"{persons:,} persons: generating the federation in {data}")
    generated = run_task("generate", data, persons)
    say(f"  generated {generated['rows']:,} rows in {generated['seconds']:.1f} s")
    chosen = [t for t in ROUND_TASKS if tasks is None or t in tasks]
    peers = [t for t in chosen if t != "pipeline"]
    if peers and "pipeline" not in chosen:
        raise ValueError("the peers read what the pipeline's first run exports: keep the pipeline task")
    samples: dict[str, list[dict[str, Any]]] = {task: [] for task in chosen}
    busy = []
    # Round one starts with the pipeline; its warehouse is exported for the peers right after.
    for round_number in range(warmup + runs):
        measured = round_number >= warmup
        busy.append(wait_until_quiet(say))
        shift = round_number % len(chosen)
        for task in chosen[shift:] + chosen[:shift]:
            result = run_task(task, data)
            say(
                f"  round {round_number + 1}/{warmup + runs}{'' if measured else ' (warm-up)'}: {task} "
                f"{result['seconds']:.2f} s, peak {result['peak_rss_mib']:,.0f} MiB"
            )
            if measured:
                samples[task].append(result)
            if task == "pipeline" and round_number == 0 and peers:
                run_task("export", data)  # the Parquet files the peers read, from this first run
    point: dict[str, Any] = {
        "persons": persons,
        "rows": generated["rows"],
        "runs": runs,
        "warmup": warmup,
        "busy_share_before_rounds": [round(x, 3) for x in busy],
        "tasks": {
            "generate": {
                "seconds": generated["seconds"],
                "runs": [round(generated["seconds"], 3)],
                "peak_rss_mib": generated["peak_rss_mib"],
                "rows": generated["rows"],
            },
            **{task: _summary(found) for task, found in samples.items()},
        },
    }
    if dashboard:
        say("  dashboard latency (AppTest)")
        point["dashboard"] = run_task("dashboard", data)
    return point


DEMO_PERSONS = 3_000


def run_demo(work: Path, runs: int, warmup: int, say: Callable[[str], None]) -> dict[str, Any]:
    """The demo federation (``parcours generate``'s defaults: 3,000 persons, every export format): the
    pipeline in a fresh process, ``runs`` times after ``warmup``; the process's seconds include Python's
    start-up and the imports, as a user running ``parcours run`` waits for them."""
    data = work / "demo"
    say(f"demo federation ({DEMO_PERSONS:,} persons, mixed formats) in {data}")
    run_task("generate_demo", data)
    samples = []
    for round_number in range(warmup + runs):
        wait_until_quiet(say)
        result = run_task("pipeline", data)
        say(
            f"  demo {round_number + 1}/{warmup + runs}{'' if round_number >= warmup else ' (warm-up)'}: "
            f"{result['process_seconds']:.1f} s in all, {result['seconds']:.1f} s of run"
        )
        if round_number >= warmup:
            samples.append(result)
    return {"persons": DEMO_PERSONS, "runs": runs, "warmup": warmup, "pipeline": _summary(samples)}


def run_benchmark(
    points: list[int],
    work: Path,
    runs: int,
    warmup: int,
    say: Callable[[str], None],
    dashboard_at: int | None,
    single_run_from: int | None = None,
    demo: bool = True,
    tasks: list[str] | None = None,
) -> dict[str, Any]:
    """``single_run_from``: points of at least this many persons get one measured run and no warm-up
    (when a session cannot afford six runs of the largest point; the report says so)."""
    started = time.time()

    def rounds(persons: int) -> tuple[int, int]:
        return (1, 0) if single_run_from is not None and persons >= single_run_from else (runs, warmup)

    results = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": machine(),
        "runs": runs,
        "warmup": warmup,
        "command": " ".join(["parcours", "bench", *sys.argv[2:]]),
        "points": [
            run_point(p, work, *rounds(p), say, dashboard=(dashboard_at is not None and p == dashboard_at), tasks=tasks)
            for p in points
        ],
    }
    if demo:
        results["demo"] = run_demo(work, runs, warmup, say)
    results["wall_seconds"] = time.time() - started
    return results
