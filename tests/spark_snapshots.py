"""What the two Spark test files share: a pipeline run on Spark, and the comparison of its release files with
the DuckDB run's. The local-session run (``test_spark_engine.py``) and the Spark Connect run
(``test_spark_connect.py``) are two files so that ``make test``'s two workers run them at the same time."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from pipelines import warehouse
from pipelines.operations.status import OPERATIONS_FILE
from pipelines.resources import ParcoursResource
from pipelines.run import run_pipeline
from tests.conftest import PipelineRun

NEEDS_JAVA = pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java: `make java` installs it")

VOLATILE_METADATA = {"published_at", "run_id"}
"""Serving metadata that differs between any two runs."""
RELATIVE_TOLERANCE = 1e-6
"""Sums of doubles in another order differ in their last bits; nothing more is allowed."""


def spark_run_on(landing: Path, data_dir: Path, remote: str = "") -> PipelineRun:
    """``PARCOURS_ENGINE=spark parcours run``, in this process: the engine read from the environment."""
    resource = ParcoursResource(data_dir=str(data_dir), landing_dir=str(landing))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PARCOURS_ENGINE", "spark")
        env.setenv("PARCOURS_SPARK_REMOTE", remote)
        assert resource.engine_config().kind == "spark"
        outcome = run_pipeline(resource, instance=dg.DagsterInstance.ephemeral(), log_level="WARNING")
    return PipelineRun(resource.settings(), outcome)


def _comparable(frame: pl.DataFrame) -> pl.DataFrame:
    """Run times out, numbers as doubles, rows in one order whatever order the engine wrote them in."""
    frame = frame.select([c for c, t in frame.schema.items() if not isinstance(t, pl.Datetime)])
    if {"key", "value"} <= set(frame.columns) and frame.height and "published_at" in frame["key"].to_list():
        frame = frame.filter(~pl.col("key").is_in(sorted(VOLATILE_METADATA)))
    frame = frame.with_columns(pl.col(c).cast(pl.Float64) for c, t in frame.schema.items() if t.is_numeric())
    keys = [
        pl.col(c).round_sig_figs(6) if t == pl.Float64 else pl.col(c).cast(pl.String) for c, t in frame.schema.items()
    ]
    return frame.sort(keys, nulls_last=True) if frame.width else frame


def table_differences(name: str, expected: pl.DataFrame, actual: pl.DataFrame) -> list[str]:
    if expected.columns != actual.columns:
        return [f"{name}: columns {actual.columns} instead of {expected.columns}"]
    if expected.height != actual.height:
        return [f"{name}: {actual.height} rows instead of {expected.height}"]
    a, b = _comparable(expected), _comparable(actual)
    problems = []
    for column in a.columns:
        x, y = a[column].to_list(), b[column].to_list()
        if a.schema[column] == pl.Float64:
            same = all(
                (p is None and q is None)
                or (p is not None and q is not None and (math.isnan(p) and math.isnan(q)))
                or (p is not None and q is not None and math.isclose(p, q, rel_tol=RELATIVE_TOLERANCE, abs_tol=1e-9))
                for p, q in zip(x, y, strict=True)
            )
        else:
            same = x == y
        if not same:
            problems.append(f"{name}.{column} differs")
    return problems


def snapshot_differences(expected_dir: Path, actual_dir: Path) -> list[str]:
    """Every DuckDB file of a serving folder (analysts', funders', each agency's, the study inputs)."""
    # The operations file (what arrived, when, by which run) is the ingestion's status, not the publication.
    expected = sorted(p.relative_to(expected_dir) for p in expected_dir.rglob("*.duckdb") if p.name != OPERATIONS_FILE)
    actual = sorted(p.relative_to(actual_dir) for p in actual_dir.rglob("*.duckdb") if p.name != OPERATIONS_FILE)
    if expected != actual:
        return [f"files {actual} instead of {expected}"]
    problems = []
    for relative in expected:
        a, b = warehouse.read_tables(expected_dir / relative), warehouse.read_tables(actual_dir / relative)
        if sorted(a) != sorted(b):
            problems.append(f"{relative}: tables {sorted(b)} instead of {sorted(a)}")
            continue
        for table in sorted(a):
            problems += table_differences(f"{relative}:{table}", a[table], b[table])
    return problems
