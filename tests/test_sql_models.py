"""SQL models: dependencies come from the SQL, layers are enforced, rates are right."""

import math
from pathlib import Path

import duckdb
import pytest

from pipelines.assets.models import model_failure, source_tables, sql_models
from pipelines.sql_models import ModelError, discover_models, tables_read

ROOT = Path(__file__).resolve().parent.parent


def test_dependencies_are_read_from_the_sql() -> None:
    sql = "with a as (select * from raw_events) select * from a join stg_persons using (person_id)"
    assert tables_read(sql) == {"raw_events", "stg_persons"}


def test_models_come_in_dependency_order() -> None:
    names = [m.name for m in sql_models()]
    for model in sql_models():
        for dependency in model.depends_on:
            if dependency in names:
                assert names.index(dependency) < names.index(model.name)
    assert {"stg_events", "int_person_time", "fct_hospital_admissions", "mart_hospitalisation_rates"} <= set(names)


def _write(folder: Path, layer: str, name: str, sql: str) -> None:
    (folder / layer).mkdir(parents=True, exist_ok=True)
    (folder / layer / f"{name}.sql").write_text(sql)


def test_a_model_reading_an_unknown_table_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, "staging", "stg_x", "select * from raw_nothing")
    with pytest.raises(ModelError, match="raw_nothing"):
        discover_models(tmp_path, source_tables())


def test_a_model_in_the_wrong_layer_folder_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, "marts", "stg_x", "select 1 as one")
    with pytest.raises(ModelError, match="belongs in models/staging"):
        discover_models(tmp_path, set())


def test_a_cycle_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, "intermediate", "int_a", "select * from int_b")
    _write(tmp_path, "intermediate", "int_b", "select * from int_a")
    with pytest.raises(ModelError, match="cycle"):
        discover_models(tmp_path, set())


def _byar(observed: int, person_years: float) -> tuple[float, float]:
    sql = (ROOT / "models" / "marts" / "mart_hospital_outcomes.sql").read_text()
    con = duckdb.connect()
    con.execute(
        "create table int_attributed_time as select 'e' as episode_id, 'p' as person_key, 'after' as period, "
        "? as person_days",
        [round(person_years * 365.25)],
    )
    con.execute(
        "create table fct_hospital_admissions as select 'e' as episode_id, 'after' as period, false as is_planned, "
        "false as is_avoidable, false as is_readmission, true as is_attributed from range(?)",
        [observed],
    )
    con.execute(
        "create table fct_emergency_visits (episode_id varchar, period varchar, followed_by_admission bool, "
        "is_attributed bool)"
    )
    con.execute(
        "create table int_episode_dimension_pairs as select 'e' as episode_id, 'c' as cohort, 'all' as dimension, "
        "'all' as dimension_value"
    )
    row = con.execute(f"select unplanned_rate_ci_low, unplanned_rate_ci_high from ({sql})").fetchone()
    assert row is not None
    return row[0] / 1000 * person_years, row[1] / 1000 * person_years


@pytest.mark.parametrize(
    ("observed", "exact_low", "exact_high"),
    [(0, 0.0, 3.689), (2, 0.2422, 7.2247), (10, 4.7954, 18.3904), (50, 37.1110, 65.9193)],
)
def test_rate_intervals_are_close_to_the_exact_poisson_interval(
    observed: int, exact_low: float, exact_high: float
) -> None:
    low, high = _byar(observed, 100.0)
    assert low == pytest.approx(exact_low, rel=0.08, abs=1e-9)
    assert high == pytest.approx(exact_high, rel=0.01)
    assert math.isfinite(high)


def test_a_failed_model_names_itself_and_never_quotes_a_value() -> None:
    con = duckdb.connect()
    with pytest.raises(duckdb.Error) as conversion:
        con.execute("select cast('jean.dupont@example.fr' as integer)")
    message = model_failure("fct_things", conversion.value)
    assert "fct_things" in message
    assert "ConversionException" in message
    assert "dupont" not in message
    with pytest.raises(duckdb.Error) as binder:
        con.execute("select no_such_column from range(1)")
    assert "no_such_column" in model_failure("fct_things", binder.value)  # the query's own words are kept


def test_the_working_database_spills_where_and_when_the_environment_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines import warehouse

    spill = tmp_path / "spill"
    monkeypatch.setenv("PARCOURS_DUCKDB_MEMORY_LIMIT", "256MB")
    monkeypatch.setenv("PARCOURS_DUCKDB_TEMP_DIR", str(spill))
    monkeypatch.setenv("PARCOURS_DUCKDB_THREADS", "1")
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        limit, threads, folder = con.execute(
            "select current_setting('memory_limit'), current_setting('threads'), current_setting('temp_directory')"
        ).fetchall()[0]
        assert limit.endswith("MiB")
        assert float(limit.split()[0]) < 256
        assert threads == 1
        assert folder == str(spill)  # where DuckDB spills what does not fit under the limit
    monkeypatch.delenv("PARCOURS_DUCKDB_MEMORY_LIMIT")
    with warehouse.connect(tmp_path / "w.duckdb") as con:  # unset: DuckDB's own default (80% of memory)
        assert con.execute("select current_setting('memory_limit')").fetchall()[0][0] != limit


def test_a_waiting_connection_gives_back_its_buffers_and_keeps_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the contract suites' process works, the run's connection holds the idle limit (DuckDB evicts
    what it can), then the pipeline's limit again; it stays open, so no other process takes the file."""
    import subprocess
    import sys

    from pipelines import warehouse

    monkeypatch.setenv("PARCOURS_DUCKDB_MEMORY_LIMIT", "1GB")
    database = tmp_path / "w.duckdb"

    def limit(con: duckdb.DuckDBPyConnection) -> str:
        return str(con.execute("select current_setting('memory_limit')").fetchall()[0][0])

    with warehouse.connect(database) as con:
        con.execute("create table t as select range as i, md5(range::varchar) as h from range(300000)")
        assert limit(con) == "953.6 MiB"
        with warehouse.buffers_released(con, database):
            assert limit(con) == "61.0 MiB"  # 64 MB
            assert con.execute("select count(distinct h) from t").fetchall() == [(300000,)]  # still works
            opened = subprocess.run(
                [sys.executable, "-c", f"import duckdb; duckdb.connect({str(database)!r}, read_only=True)"],
                capture_output=True,
                text=True,
            )
            assert opened.returncode != 0
            assert "lock" in opened.stderr.lower()
        assert limit(con) == "953.6 MiB"
        con.execute("begin transaction")  # what a transaction pins may not fit: the limit is then kept
        con.execute("create temporary table big as select range as i, repeat('x', 200) as s from range(1000000)")
        with warehouse.buffers_released(con, database):
            assert con.execute("select count(*) from big").fetchall() == [(1000000,)]
        con.execute("rollback")
        assert limit(con) == "953.6 MiB"


def test_a_share_of_the_memory_limit_holds_in_the_block_and_the_pipelines_limit_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The studies' queries run under half the pipeline's limit (``warehouse.memory_share``), then the pipeline's
    limit is back, also when the block fails; a limit that is not a size is left alone."""
    from pipelines import warehouse

    def limit(con: duckdb.DuckDBPyConnection) -> str:
        return str(con.execute("select current_setting('memory_limit')").fetchall()[0][0])

    monkeypatch.setenv("PARCOURS_DUCKDB_MEMORY_LIMIT", "2GB")
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        assert limit(con) == "1.8 GiB"  # 2 GB
        with warehouse.memory_share(con, 0.5):
            assert limit(con) == "953.6 MiB"  # 1 GB
            assert con.execute("select count(distinct range % 1000) from range(100000)").fetchall() == [(1000,)]
        assert limit(con) == "1.8 GiB"
        with pytest.raises(ZeroDivisionError), warehouse.memory_share(con, 0.5):
            raise ZeroDivisionError
        assert limit(con) == "1.8 GiB"
    monkeypatch.setenv("PARCOURS_DUCKDB_MEMORY_LIMIT", "-1")
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        before = limit(con)
        with warehouse.memory_share(con, 0.5):
            assert limit(con) == before


def test_joins_build_on_the_side_written_right_in_the_block_and_as_duckdb_chooses_after(tmp_path: Path) -> None:
    """``warehouse.join_sides_as_written``: DuckDB's choice of a join's build side is off in the block (a wide
    left side stays the probe side), back after it, also when the block fails, and other disabled optimizers
    stay disabled."""
    from pipelines import warehouse

    def build_side(con: duckdb.DuckDBPyConnection) -> str:
        plan = str(con.execute("explain select * from wide left join narrow using (k)").fetchall()[0][1])
        return "RIGHT" if "RIGHT" in plan else "LEFT"

    with warehouse.connect(tmp_path / "w.duckdb") as con:
        con.execute("create table wide as select range as k, repeat('x', 50) as a from range(1000)")
        con.execute("create table narrow as select range as k from range(100000)")
        con.execute("set disabled_optimizers = 'late_materialization'")
        assert build_side(con) == "RIGHT"  # DuckDB builds on the smaller, wide table
        with warehouse.join_sides_as_written(con):
            assert build_side(con) == "LEFT"
        assert build_side(con) == "RIGHT"
        with pytest.raises(ZeroDivisionError), warehouse.join_sides_as_written(con):
            raise ZeroDivisionError
        assert build_side(con) == "RIGHT"
        disabled = con.execute("select current_setting('disabled_optimizers')").fetchall()[0][0]
        assert disabled == "late_materialization"


def test_every_connection_has_a_memory_limit_and_a_spill_folder_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines import warehouse
    from pipelines.settings import ENGINE_SETTINGS

    for name in ENGINE_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        on_file = warehouse.effective_settings(con)
    assert on_file["duckdb_memory_limit"] == "1.8 GiB"  # DuckDB shows 2 GB (10^9 bytes) in GiB
    assert on_file["duckdb_temp_directory"] == str(tmp_path / "w.duckdb.tmp")  # in the run's data folder
    con = warehouse.memory_connection()
    in_memory = warehouse.effective_settings(con)
    con.close()
    assert in_memory["duckdb_memory_limit"] == on_file["duckdb_memory_limit"]
    assert in_memory["duckdb_temp_directory"] == ""  # spills nowhere, never into the working directory
    monkeypatch.setenv("PARCOURS_DUCKDB_MEMORY_LIMIT", "6GB")
    monkeypatch.setenv("PARCOURS_DUCKDB_TEMP_DIR", str(tmp_path / "spill"))
    con = warehouse.memory_connection()
    told = warehouse.effective_settings(con)
    con.close()
    assert told["duckdb_memory_limit"] == "5.5 GiB"
    assert told["duckdb_temp_directory"] == str(tmp_path / "spill")


def test_a_query_larger_than_the_limit_spills_instead_of_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines import warehouse

    monkeypatch.setenv("PARCOURS_DUCKDB_MEMORY_LIMIT", "64MB")
    monkeypatch.setenv("PARCOURS_DUCKDB_THREADS", "1")
    sort = "create table t as select range as a, md5(range::varchar) as b from range(2000000) order by b"
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        con.execute(sort)
        assert con.execute("select count(*) from t").fetchall() == [(2_000_000,)]
    con = warehouse.memory_connection()  # an in-memory database has nowhere to spill: a clear error
    with pytest.raises(duckdb.OutOfMemoryException):
        con.execute(sort)
    con.close()


def test_the_run_says_which_engine_settings_it_ran_under(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dagster as dg

    from pipelines.assets.ingestion import run_parameters
    from pipelines.resources import ParcoursResource

    monkeypatch.setenv("PARCOURS_DUCKDB_MEMORY_LIMIT", "3GB")
    result = dg.materialize([run_parameters], resources={"parcours": ParcoursResource(data_dir=str(tmp_path))})
    (materialization,) = result.asset_materializations_for_node(run_parameters.op.name)
    metadata = {k: str(getattr(v, "value", v)) for k, v in materialization.metadata.items()}
    assert metadata["duckdb_memory_limit"] == "2.7 GiB"
    assert metadata["duckdb_temp_directory"].endswith("parcours.duckdb.tmp")
    assert metadata["duckdb_temp_directory"].startswith(str(tmp_path))
