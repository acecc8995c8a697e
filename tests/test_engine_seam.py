"""The engine seam: one place imports the engines, SQL is transpiled with a few documented rewrites,
and the engine is chosen by configuration."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import sqlglot

from pipelines.engines import EngineConfig, as_engine
from pipelines.engines.dialect import spark_args, to_spark
from pipelines.settings import engine_config

ROOT = Path(__file__).resolve().parent.parent
SEAM = {ROOT / "pipelines" / "warehouse.py", *(ROOT / "pipelines" / "engines").glob("*.py")}
PEERS = ROOT / "pipelines" / "bench"
"""The bench times raw DuckDB, pandas and Polars as peers of the pipeline: it drives them directly on purpose."""


def _engine_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found += [n for n in names if n.split(".")[0] in ("duckdb", "pyspark")]
    return found


def test_only_the_seam_imports_an_engine() -> None:
    offenders = {}
    for folder in ("pipelines", "quality", "dashboards"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path in SEAM or PEERS in path.parents:
                continue
            if found := _engine_imports(path):
                offenders[str(path.relative_to(ROOT))] = found
    assert offenders == {}


def test_the_check_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from pyspark.sql import SparkSession\n    import duckdb\n")
    assert _engine_imports(module) == ["pyspark.sql", "duckdb"]


def _spark(sql: str, params: dict[str, object] | None = None) -> sqlglot.exp.Expr:
    return sqlglot.parse_one(to_spark(sql, params), read="spark")


def test_decimal_literals_become_doubles_and_integers_stay() -> None:
    tree = _spark("select x / 365.25 as years, 1e3 as big, 7 as days from t")
    casts = list(tree.find_all(sqlglot.exp.Cast))
    assert sorted(c.this.name for c in casts) == ["1e3", "365.25"]
    assert all(c.to.is_type("double") for c in casts)
    assert "CAST(7" not in to_spark("select 7 as days from t")


def test_the_length_of_a_list_parameter_is_its_size_and_of_a_string_its_length() -> None:
    sql = "select len($models) = 0 or list_contains($models, m) as kept, len($word) as n, len(name) as l from t"
    text = to_spark(sql, {"models": ["a"], "word": "abc"})
    assert "SIZE(:models)" in text
    assert "LENGTH(:word)" in text
    assert "LENGTH(name)" in text


def test_parameters_stay_bound_never_written_into_the_sql() -> None:
    text = to_spark("select * from t where person_key = $key and age between $low and 99", {"key": "x'; drop"})
    assert ":key" in text
    assert ":low" in text
    assert "drop" not in text.lower()
    assert spark_args({"models": ("a", "b"), "n": 3}) == {"models": ["a", "b"], "n": 3}


def test_a_distinct_count_over_a_window_is_the_size_of_its_set() -> None:
    text = to_spark("select count(distinct agency_id) over (partition by person_key) as agencies from t")
    assert text == "SELECT SIZE(COLLECT_SET(agency_id) OVER (PARTITION BY person_key)) AS agencies FROM t"
    plain = to_spark("select count(distinct agency_id) as agencies from t")
    assert "COUNT(DISTINCT agency_id)" in plain  # outside a window Spark counts distinct values itself


def test_the_engine_is_read_from_the_environment_when_asked() -> None:
    assert engine_config({}) == EngineConfig()
    config = engine_config(
        {
            "PARCOURS_ENGINE": "Spark",
            "PARCOURS_SPARK_REMOTE": "sc://cluster:15002",
            "PARCOURS_SPARK_CONF": "spark.executor.memory=8g spark.sql.shuffle.partitions=64",
        }
    )
    assert config.kind == "spark"
    assert config.spark_remote == "sc://cluster:15002"
    assert dict(config.spark_conf) == {"spark.executor.memory": "8g", "spark.sql.shuffle.partitions": "64"}
    assert engine_config({"PARCOURS_ENGINE": "spark"}, kind="duckdb").kind == "duckdb"  # the resource's field wins
    with pytest.raises(ValueError, match="PARCOURS_ENGINE"):
        engine_config({"PARCOURS_ENGINE": "oracle"})
    with pytest.raises(ValueError, match="name=value"):
        engine_config({"PARCOURS_SPARK_CONF": "spark.executor.memory"})


def test_a_duckdb_connection_is_the_duckdb_engine() -> None:
    from pipelines import warehouse

    con = warehouse.memory_connection()
    engine = as_engine(con)
    assert engine.name == "duckdb"
    assert as_engine(engine) is engine
    import polars as pl

    with engine.registered("_frame", pl.DataFrame({"x": [3, 1, 2]})):
        assert engine.query("select x from _frame where x >= $low order by x", {"low": 2})["x"].to_list() == [2, 3]
    assert engine.scalar("select len($items)", {"items": ["a", "b"]}) == 2


def test_a_cte_s_storage_hint_is_duckdb_s_and_spark_gets_the_bare_cte() -> None:
    sql = "with a as not materialized (select 1 as x), b as materialized (select * from a) select * from b, b as c"
    assert "MATERIALIZED" not in to_spark(sql).upper()
    assert [cte.alias for cte in _spark(sql).find_all(sqlglot.exp.CTE)] == ["a", "b"]
