"""The studies' timing tool builds its warehouse, times each study and writes the rows it timed."""

from pathlib import Path

import polars as pl
import pytest

from pipelines.impact.timing import main


def test_timing_builds_the_warehouse_and_writes_the_studies_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "studies.duckdb"
    args = ["--warehouse", str(database), "--persons", "900", "--agencies", "6", "--studies", "rupture_repair"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    printed = capsys.readouterr().out
    assert "warehouse built" in printed
    assert "rupture_repair:" in printed
    assert "s CPU" in printed
    rows = pl.read_parquet(tmp_path / "run.parquet")
    assert set(rows["study"]) == {"rupture_repair"}
    assert rows.filter(pl.col("role") == "main").height == 1
    assert main(args) == 0  # the second time the warehouse is reused
    assert "warehouse built" not in capsys.readouterr().out
