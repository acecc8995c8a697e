"""The pipeline on Spark gives the snapshot DuckDB gives: the whole run on a local Spark session, and the
engine's pieces (transactions, sources, literals, error messages). The same run through Spark Connect is
``test_spark_connect.py``.

One small federation (the suite's), one Spark session for the module. ``make test`` installs Java when
it is missing (``make java``); without it these tests are skipped, saying why.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
import sqlglot

from pipelines import warehouse
from pipelines.assets.models import model_failure
from pipelines.engines import Engine, EngineConfig, as_engine, engine_errors, open_engine
from pipelines.engines.spark import spark_session
from tests.conftest import PipelineRun
from tests.spark_snapshots import NEEDS_JAVA, snapshot_differences, spark_run_on, table_differences

pytestmark = NEEDS_JAVA


@pytest.fixture(scope="module")
def spark_run(small_federation_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    run = spark_run_on(small_federation_dir / "landing", tmp_path_factory.mktemp("spark_run"))
    assert run.outcome.success, run.outcome.failures
    return run


def test_the_pipeline_on_spark_publishes_the_snapshot_duckdb_publishes(
    small_run: PipelineRun, spark_run: PipelineRun
) -> None:
    assert spark_run.outcome.failed_checks == []
    assert set(small_run.outcome.materialized) == set(spark_run.outcome.materialized)
    problems = snapshot_differences(small_run.settings.serving_path.parent, spark_run.settings.serving_path.parent)
    assert problems == []
    studies = warehouse.read_tables(spark_run.settings.serving_path)["mart_impact_studies"]
    assert studies.height > 0  # the study results are compared above, and there are some


def test_the_comparison_sees_a_changed_number() -> None:
    frame = pl.DataFrame({"cohort": ["a", "b"], "rate": [1.0, 2.0], "n": [3, 4]})
    assert table_differences("t", frame, frame.reverse()) == []
    assert table_differences("t", frame, frame.with_columns(pl.col("rate") * (1 + 1e-12))) == []
    assert table_differences("t", frame, frame.with_columns(pl.col("rate") * 1.001)) == ["t.rate differs"]
    assert table_differences("t", frame, frame.with_columns(pl.col("n") + 1)) == ["t.n differs"]
    assert table_differences("t", frame, frame.drop("n")) != []


def test_the_models_live_in_the_spark_store_listed_in_the_working_database(spark_run: PipelineRun) -> None:
    with warehouse.connect(spark_run.settings.warehouse_path, read_only=True) as con:
        listed = warehouse.query(con, "select name, location, rows from spark_models order by name")
    assert {"stg_persons", "int_events", "fct_episodes", "mart_hospital_outcomes"} <= set(listed["name"].to_list())
    store = spark_run.settings.warehouse_path.with_name("parcours_spark")
    folders = {str(p) for p in store.glob("*/*") if p.is_dir()}
    assert folders == set(listed["location"].to_list())  # one current folder per model, nothing left behind


@pytest.fixture
def spark_engine(tmp_path: Path) -> Iterator[Engine]:
    """The Spark engine over an empty working database (the module's session, reused)."""
    with open_engine(EngineConfig(kind="spark"), tmp_path / "w.duckdb", ["raw_things"]) as engine:
        yield engine


def _a_run_that_fails(engine: Engine) -> None:
    with engine.models_transaction():
        engine.run_model("int_a", "select 2 as x")
        engine.run_model("int_b", "select no_such_column from int_a")


def test_a_failed_transaction_leaves_the_models_as_they_were(spark_engine: Engine, tmp_path: Path) -> None:
    spark_engine.run_model("int_a", "select 1 as x")
    before = warehouse.query(spark_engine.working, "select location from spark_models where name = 'int_a'")
    with pytest.raises(engine_errors()):
        _a_run_that_fails(spark_engine)
    after = warehouse.query(spark_engine.working, "select name, location from spark_models")
    assert after["name"].to_list() == ["int_a"]
    assert after["location"].to_list() == before["location"].to_list()
    assert spark_engine.scalar("select x from int_a") == 1
    assert [p.name for p in (tmp_path / "w_spark").iterdir()] == ["int_a"]
    assert len(list((tmp_path / "w_spark" / "int_a").iterdir())) == 1  # the failed run's folder is gone


def test_sources_come_from_the_working_database_and_frames_are_registered(spark_engine: Engine) -> None:
    warehouse.replace_table(spark_engine.working, "raw_things", pl.DataFrame({"n": [1, 2, 3]}))
    assert spark_engine.run_model("stg_things", "select n * 2 as n from raw_things") == 3
    with spark_engine.registered("_wanted", pl.DataFrame({"n": [4, 6]})):
        found = spark_engine.query(
            "select n from stg_things where list_contains($allowed, n) and n in (select n from _wanted) order by n",
            {"allowed": [2, 4, 6]},
        )
    assert found["n"].to_list() == [4, 6]
    spark_engine.to_working(["stg_things"])
    assert warehouse.scalar(spark_engine.working, "select sum(n) from stg_things") == 12


def test_decimal_literals_give_duckdb_s_doubles_on_spark(spark_engine: Engine) -> None:
    sql = "select avg(days / 365.25) as years from (select 100 as days union all select 201 as days) as d"
    duckdb_years = as_engine(warehouse.memory_connection()).scalar(sql)
    assert spark_engine.scalar(sql) == pytest.approx(duckdb_years, rel=1e-15)
    plain = sqlglot.transpile(sql, read="duckdb", write="spark")[0]  # without the rewrite: DECIMAL, rounded
    unrewritten = spark_session(EngineConfig(kind="spark")).sql(plain).collect()[0][0]
    assert abs(float(unrewritten) - duckdb_years) > 1e-9


def test_a_spark_data_error_is_reported_without_the_value(spark_engine: Engine) -> None:
    with pytest.raises(engine_errors()) as raised:
        spark_engine.run_model("int_bad", "select cast('jean.dupont@example.fr' as integer) as n")
    message = model_failure("int_bad", raised.value)
    assert "int_bad" in message
    assert "dupont" not in message
    with pytest.raises(engine_errors()) as unknown:
        spark_engine.run_model("int_bad", "select no_such_column from (select 1 as x) as t")
    assert "no_such_column" in model_failure("int_bad", unknown.value)  # the query's own words are kept
