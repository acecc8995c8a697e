"""The benchmark's peers compute what the pipeline computes, and its report reads its results right.

Timings are never asserted here: they are measured by ``parcours bench``, not by tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

from pipelines import warehouse
from pipelines.bench import outcome_peers
from pipelines.bench.ingest_peers import landing_csvs, pandas_ingest
from pipelines.bench.report import PEER_TASKS, growth_exponent, render, targets
from pipelines.bench.runner import _tree_rss_kib, run_task
from pipelines.bench.tasks import stage_selection
from pipelines.contract import load_contract
from pipelines.impact.cells import group_cells
from pipelines.ingest.pseudonyms import DEMO_KEY
from pipelines.ingest.readers import discover_landing_files
from pipelines.ingest.service import ingest_files
from tests.conftest import PipelineRun

TODAY = date(2026, 7, 1)


def test_outcome_peers_give_the_pipelines_figures(small_run: PipelineRun, tmp_path: Path) -> None:
    with warehouse.connect(small_run.settings.warehouse_path, read_only=True) as con:
        for table in ("raw_episodes", "raw_events"):
            con.sql(f"copy {table} to '{tmp_path / (table + '.parquet')}' (format parquet)")
        expected = outcome_peers.pipeline_result(con)
    assert expected.height == 4
    assert expected["unplanned_admissions"].sum() > 0
    for name, peer in outcome_peers.PEERS.items():
        got = peer(tmp_path / "raw_episodes.parquet", tmp_path / "raw_events.parquet")
        assert got.equals(expected), name


def _landing_with_defects(small_federation_dir: Path, target: Path) -> Path:
    """A UTF-8 CSV agency of the small federation (the bench's format), with bad rows appended to its events."""
    source = next(
        p
        for p in sorted((small_federation_dir / "landing").iterdir())
        if any(f.read_bytes().startswith(b"\xef\xbb\xbf") for f in p.glob("*_events.csv"))
    )
    agency = target / "landing" / source.name
    shutil.copytree(source, agency)
    events = next(agency.glob("*_events.csv"))
    lines = events.read_text(encoding="utf-8-sig").splitlines()
    header, first = lines[0].split(","), lines[1].split(",")

    def row(**changes: str) -> str:
        values = dict(zip(header, first, strict=True))
        values.update(changes)
        return ",".join(values[h] for h in header)

    bad = [
        lines[1],  # the same row twice
        row(event_id="X1", event_type=""),
        row(event_id="X2", event_type="party"),
        row(event_id="X3", event_date="2024-13-45"),
        row(event_id="X4", event_date="2031-01-01", end_date=""),
        row(event_id="X5", person_id="=cmd()"),
    ]
    events.write_text("\ufeff" + "\n".join([*lines, *bad]) + "\n", encoding="utf-8")
    return target / "landing"


def test_pandas_ingestion_accepts_and_quarantines_the_same_rows(
    small_run: PipelineRun, small_federation_dir: Path, tmp_path: Path
) -> None:
    del small_run  # only its federation folder
    landing = _landing_with_defects(small_federation_dir, tmp_path)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        reports = ingest_files(con, discover_landing_files(landing), load_contract(), DEMO_KEY, TODAY)
    pipeline = {Path(r.file).name: (r.rows_accepted, r.rows_quarantined) for r in reports}
    peer = pandas_ingest(landing_csvs(landing), load_contract(), DEMO_KEY, TODAY)
    assert peer == pipeline
    assert sum(q for _, q in peer.values()) == 6


def test_a_task_runs_in_its_own_process_and_reports_its_memory(small_federation_dir: Path) -> None:
    result = run_task("floor_ingest", small_federation_dir)
    csv_rows = sum(
        len(p.read_text(encoding="utf-8-sig").splitlines()) - 1 for p in landing_csvs(small_federation_dir / "landing")
    )
    assert result["rows"] == csv_rows
    assert result["seconds"] > 0
    assert result["peak_rss_mib"] > 10


def test_cells_group_identical_rows_and_total_what_was_drawn() -> None:
    t = np.array([1, 1, 0, 0, 1])
    x = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [2.0, 1.0], [2.0, 1.0]])
    cells = group_cells(t, x)
    assert cells.size == 4
    assert cells.index[0] == cells.index[1] != cells.index[2]
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    counts, (sums,) = cells.totals(np.array([0, 0, 1, 4]), y)
    assert counts[cells.index[0]] == 3
    assert sums[cells.index[0]] == 4.0
    assert counts[cells.index[4]] == 1
    assert sums[cells.index[4]] == 5.0
    assert counts[cells.index[2]] == 0


def _point(persons: int, pipeline: float, floor: float) -> dict:
    stages = {
        "ingest": pipeline / 4,
        "quality": pipeline / 50,
        "models": pipeline / 4,
        "studies": pipeline / 4,
        "serving": 1.0,
    }
    task = {"seconds": floor, "peak_rss_mib": 100.0, "rows": persons, "check": True}
    return {
        "persons": persons,
        "rows": 20 * persons,
        "tasks": {
            "generate": dict(task),
            "pipeline": {"seconds": pipeline, "stages": stages, "peak_rss_mib": 2048.0, "rows": 20 * persons},
            **{name: dict(task) for name in PEER_TASKS},
        },
    }


def test_growth_exponent_is_the_log_log_slope_of_the_two_largest_points() -> None:
    points = [_point(1_000, 5.0, 1.0), _point(10_000, 10.0, 1.0), _point(100_000, 100.0, 1.0)]
    assert growth_exponent(points, lambda p: p["tasks"]["pipeline"]["seconds"]) == pytest.approx(1.0)
    assert growth_exponent(points[:1], lambda p: 1.0) is None


def test_report_states_each_target_and_whether_it_is_met() -> None:
    point = _point(1_000_000, 200.0, 10.0)
    met = {name: ok for name, _, ok in targets(point, 1.0)}
    assert met["whole pipeline under 2 minutes"] is False
    assert met["pipeline peak memory under 4 GiB (its largest process)"] is True
    assert met["growth exponent at most 1.05"] is True
    assert met["studies stage under 30 s"] is False  # 50 s of 200
    assert met["Great Expectations suites under 10% of ingestion"] is True  # 4 s of 50
    point["tasks"]["pipeline"]["stages"]["quality"] = 5.0
    assert {name: ok for name, _, ok in targets(point, 1.0)}[
        "Great Expectations suites under 10% of ingestion"
    ] is False
    point["tasks"]["pipeline"]["stages"]["quality"] = 4.0
    results = {
        "started_at": "2026-11-23T00:00:00Z",
        "command": "parcours bench",
        "machine": {"cpu": "cpu", "cores": 2, "memory_mib": 1, "os": "os", "python": "3.11", "versions": {}},
        "runs": 5,
        "warmup": 1,
        "wall_seconds": 60.0,
        "points": [_point(100_000, 20.0, 1.0), point],
    }
    text = render(results, "## Reading guide")
    assert "| whole pipeline under 2 minutes | 200.0 s | **no** |" in text
    assert "## Targets at 1,000,000 persons" in text
    assert text.rstrip().endswith("## Reading guide")
    assert "demo federation" not in text  # results from before the demo was measured still render
    demo = {"pipeline": {"seconds": 8.0, "process_seconds": 12.5, "stages": {"ingest": 3.0}, "peak_rss_mib": 600.0}}
    text = render({**results, "demo": {"persons": 3_000, "runs": 5, "warmup": 1, **demo}}, "## Reading guide")
    assert "ingest 3.0 s" in text
    assert (
        "the whole process (Python start-up and imports included) 12.5 s against a target of 10 s: met **no**" in text
    )


def test_a_point_measured_with_the_pipeline_alone_renders() -> None:
    # parcours bench --persons 10000000 --tasks pipeline: no peer ran at the largest point.
    small, large = _point(100_000, 20.0, 1.0), _point(10_000_000, 2000.0, 1.0)
    large["tasks"] = {name: large["tasks"][name] for name in ("generate", "pipeline")}
    met = {name: ok for name, _, ok in targets(large, None)}
    assert set(met) == {
        "whole pipeline under 2 minutes",
        "studies stage under 30 s",
        "pipeline peak memory under 4 GiB (its largest process)",
        "growth exponent at most 1.05",
        "Great Expectations suites under 10% of ingestion",
    }
    text = render(_results([small, large]), "")
    assert "| 10,000,000 | 200,000,000 |" in text
    assert "| 10,000,000 | ingestion" not in text


def _results(points: list[dict[str, Any]]) -> dict[str, Any]:
    """A one-run bench result around ``points``, as ``parcours bench`` writes it."""
    return {
        "started_at": "2026-11-30T00:00:00Z",
        "command": "parcours bench",
        "machine": {"cpu": "cpu", "cores": 2, "memory_mib": 1, "os": "os", "python": "3.11", "versions": {}},
        "runs": 1,
        "warmup": 0,
        "wall_seconds": 60.0,
        "points": points,
    }


def test_a_point_with_some_peers_shows_the_comparisons_they_allow() -> None:
    # parcours bench --tasks pipeline floor_ingest pandas_ingest: the ingestion's ratios, nothing else.
    point = _point(1_000_000, 200.0, 10.0)  # ingest 50 s; both ingestion peers 10 s
    point["tasks"] = {name: point["tasks"][name] for name in ("generate", "pipeline", "floor_ingest", "pandas_ingest")}
    met = {name: ok for name, _, ok in targets(point, None)}
    assert met["ingestion within 2× of DuckDB read_csv"] is False  # 50 s against 2 × 10 s
    assert met["ingestion at least 3× faster than the pandas script"] is False
    assert "whole pipeline within 2× the floors + 5 s" not in met  # the models' and outcome floors did not run
    assert "outcome (SQL) at least 2× faster than pandas" not in met
    point["tasks"]["floor_ingest"]["seconds"] = 30.0
    point["tasks"]["pandas_ingest"]["seconds"] = 150.0
    met = {name: ok for name, _, ok in targets(point, None)}
    assert met["ingestion within 2× of DuckDB read_csv"] is True
    assert met["ingestion at least 3× faster than the pandas script"] is True
    text = render(_results([point]), "")
    assert (
        "| 1,000,000 | ingestion (read, checks, quarantine) | 50.00 | 30.00 | 150.00 | | 1.67× | 0.33× | yes |" in text
    )
    assert "all SQL models" not in text
    assert "hospitalisation outcome" not in text
    # A point whose stage seconds were not kept (only its total, from the bench's log) leaves them blank.
    small = _point(100_000, 20.0, 1.0)
    del small["tasks"]["pipeline"]["stages"]
    text = render(_results([small, point]), "")
    assert "| 100,000 | 2,000,000 | 1.0 |  |  |  |  |  |  | 20.0 |" in text


def test_the_pipeline_table_shows_cpu_seconds_and_the_load_where_measured() -> None:
    measured, older = _point(100_000, 20.0, 1.0), _point(1_000_000, 200.0, 10.0)
    measured["tasks"]["pipeline"] |= {"cpu_seconds": 31.25, "load_average": [[0.5, 1.75], [2.0, 2.0]]}
    text = render(_results([measured, older]), "")
    assert "| 20.0 | 100,000 | 31.2 | 0.5 → 1.75; 2 → 2 | 2,048 MiB |" in text
    assert "| 200.0 | 100,000 |  |  | 2,048 MiB |" in text  # results from before CPU was measured


def test_a_task_reports_its_cpu_seconds_and_the_load_around_it(small_federation_dir: Path) -> None:
    result = run_task("floor_ingest", small_federation_dir)
    assert 0 < result["cpu_seconds"] < result["process_seconds"] * (os.cpu_count() or 1)
    assert len(result["load_average"]) == 2


def test_the_publication_stage_runs_again_alone_on_a_finished_run(small_run: PipelineRun, tmp_path: Path) -> None:
    data = tmp_path / "run"
    shutil.copytree(small_run.settings.data_dir, data, ignore=shutil.ignore_patterns("*.wal", ".*.writer"))
    serving = data / "serving" / "parcours_serving.duckdb"
    serving.unlink()
    result = run_task("serving", data)
    assert result["rows"] == 1  # the one step of the stage
    assert serving.exists()  # written again from the warehouse the run left


def test_a_stage_selects_every_asset_its_steps_make() -> None:
    """The raw tables and the SQL models are one step each that makes many assets: a stage run alone selects
    them all (a step's name alone is no asset key, and Dagster refused the selection at 10,000,000 persons)."""
    assets, keys, steps = stage_selection("models")
    (models,) = [a for a in assets if a.node_def.name == "sql_models"]
    assert steps == 1
    assert keys == sorted(k.to_user_string() for k in models.keys)
    assert len(keys) > 10
    assets, keys, steps = stage_selection("ingest")
    (raw,) = [a for a in assets if a.node_def.name == "raw_tables"]
    assert {k.to_user_string() for k in raw.keys} < set(keys)
    assert "quality_report" in keys
    assert stage_selection("nothing")[1:] == ([], 0)


TOUCH_200_MB = "import time; held = bytearray(200_000_000); held[::4096] = b'x' * len(held[::4096]); time.sleep(30)"


def test_a_tasks_peak_memory_counts_its_child_processes() -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; held = bytearray(200_000_000); held[::4096] = b'x' * len(held[::4096]); time.sleep(30)",
        ]
    )
    try:
        time.sleep(2)
        alone = _tree_rss_kib(child.pid)
        assert alone > 150_000  # the child's 200 MB
        assert _tree_rss_kib(os.getpid()) > alone  # this process and its child, summed
    finally:
        child.kill()
        child.wait()
    point = _point(1_000_000, 200.0, 10.0)
    point["tasks"]["pipeline"]["peak_tree_rss_mib"] = 5000.0  # 2,048 MiB in its largest process
    met = {name: ok for name, _, ok in targets(point, None)}
    assert met["pipeline peak memory under 4 GiB (its processes together)"] is False
    assert "| 5,000 MiB |" in render(_results([point]), "")
