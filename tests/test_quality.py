"""Contract suites and the quality report: failures are counted, values never shown."""

import logging
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest

from pipelines import warehouse
from pipelines.contract import load_contract
from pipelines.definitions import defs
from pipelines.resources import ParcoursResource
from pipelines.sensors import landing_folder_sensor
from quality.report import data_docs_folder, render_report
from quality.suites import BLOCKING, CATEGORIES, expectation_specs, suites_connection_config, validate_queries
from quality.suites_process import SuitesProcess, SuitesProcessError
from tests.conftest import PipelineRun


def test_every_suite_covers_the_three_categories() -> None:
    for entity in load_contract().entities.values():
        categories = {category for category, _, _ in expectation_specs(entity, date(2026, 1, 1))}
        assert categories <= set(CATEGORIES)
        assert {"conformance", "completeness"} <= categories
    assert {"conformance", "completeness"} == BLOCKING


PLANTED = "PLANTEDVALUE7Q"
"""A recognisable value, planted where expectations fail: it must appear in no output."""


def _agencies_parquet(folder: Path) -> str:
    """An agencies file whose rows break the suite: a code outside the contract's set, a duplicated
    key and a too-long text, each carrying the planted value; a ``select`` over it."""
    path = folder / "agencies.parquet"
    frame = pl.DataFrame(
        {
            "agency_id": ["A1", f"{PLANTED}-1", f"{PLANTED}-1"],
            "model": ["remote", PLANTED, "proximity"],
            "departement": ["75", "75", f"2A{PLANTED * 20}"],
        }
    )
    frame.write_parquet(path)
    return f"select * from read_parquet('{path.as_posix()}')"


def _outputs(folder: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file())


def test_failures_are_counted_without_values(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    docs = tmp_path / "docs"
    caplog.set_level(logging.DEBUG)
    outcomes = validate_queries(
        {"agencies": _agencies_parquet(tmp_path)}, load_contract(), date(2026, 1, 1), data_docs=docs
    )
    failed = {(o.expectation, o.column): o for o in outcomes if not o.success}
    assert failed[("expect_column_values_to_be_in_set", "model")].unexpected_count == 1
    assert failed[("expect_column_values_to_be_unique", "agency_id")].unexpected_count == 2
    assert failed[("expect_column_values_to_be_unique", "agency_id")].category == "completeness"
    assert ("expect_column_values_to_be_between", "rows_with_this_key") not in failed, "reported as what it checks"
    assert failed[("expect_column_value_lengths_to_be_between", "departement")].unexpected_count == 1
    assert {o.element_count for o in outcomes} == {3}
    passed = {(o.expectation, o.column) for o in outcomes if o.success}
    assert ("expect_column_values_to_not_be_null", "agency_id") in passed
    assert PLANTED not in repr(outcomes)
    assert PLANTED not in caplog.text
    assert (docs / "index.html").is_file()
    written = _outputs(docs)
    assert "agencies" in written, "the Data Docs hold the suite and its results"
    assert PLANTED not in written


def test_the_dialect_reflects_what_great_expectations_fell_back_to(tmp_path: Path) -> None:
    """duckdb-engine's reflection fails on DuckDB (PostgreSQL's catalogue queries) and Great Expectations
    falls back to a ``select *``'s column names; the suites' dialect answers those names, in order, with no
    type, and the primary key (none in the suites' catalogue) from DuckDB's own catalogue."""
    import sqlalchemy as sa
    from great_expectations.expectations.metrics.util import column_reflection_fallback

    from quality import sql_dialect

    database = tmp_path / "catalogue.duckdb"
    with warehouse.connect(database) as con:
        con.execute("create table plain as select 1 as b, 'x' as a, date '2026-01-01' as \"Mixed Case\"")
        con.execute("create table keyed (k integer, j varchar, v double, primary key (k, j))")
    engine = sa.create_engine(f"{sql_dialect.register()}:///{database.as_posix()}")
    try:
        inspector = sa.inspect(engine)
        for table in ("plain", "keyed"):
            fallback = column_reflection_fallback(table, engine.dialect, engine)  # type: ignore[arg-type]
            columns = inspector.get_columns(table)
            assert [c["name"] for c in columns] == [c["name"] for c in fallback]
            assert all(isinstance(c["type"], sa.types.NullType) for c in columns)
        assert inspector.get_pk_constraint("plain")["constrained_columns"] == []
        assert inspector.get_pk_constraint("keyed")["constrained_columns"] == ["k", "j"]
    finally:
        engine.dispose()


def test_a_compound_key_counts_the_rows_that_share_it(tmp_path: Path) -> None:
    """Hand-counted: three rows share one service plan's key, one is alone, two have a part of their key
    missing (never duplicates, as in Great Expectations' own compound uniqueness: the not-null expectation
    counts them). Reported as the uniqueness it checks, on the key's columns, with no value."""
    path = tmp_path / "service_plans.parquet"
    pl.DataFrame(
        {
            "person_id": [f"{PLANTED}-1"] * 3 + ["P2", "P3", "P3"],
            "month": ["2026-01"] * 4 + [None, None],
            "funder": ["apa"] * 6,
        }
    ).write_parquet(path)
    outcomes = validate_queries(
        {"service_plans": f"select * from read_parquet('{path.as_posix()}')"}, load_contract(), date(2026, 1, 1)
    )
    key = ",".join(load_contract().entity("service_plans").primary_key)
    [unique] = [o for o in outcomes if o.expectation == "expect_compound_columns_to_be_unique"]
    assert (unique.column, unique.category, unique.success) == (key, "completeness", False)
    assert (unique.unexpected_count, unique.element_count, unique.unexpected_percent) == (3, 6, 50.0)
    assert PLANTED not in repr(outcomes)


_S = pl.Utf8
_KEY_CASES: dict[str, tuple[str, list[dict[str, list[Any]]]]] = {
    "duplicates across files": ("persons", [{"person_id": ["A", "B"]}, {"person_id": ["A", "C"]}]),
    "missing single keys": ("persons", [{"person_id": ["A", "A", None, None, "B"]}]),
    "only missing keys": ("persons", [{"person_id": [None, None]}]),
    "no rows": ("persons", [{"person_id": []}]),
    "near-identical strings": ("persons", [{"person_id": ["a", "A", "a ", "", "", "é", "e\u0301", "x'y", "x'y"]}]),
    "compound, parts missing": (
        "service_plans",
        [
            {
                "person_id": ["P1", "P1", "P2", "P2", None, None, "P3"],
                "month": [date(2026, 1, 1)] * 2 + [None] * 4 + [date(2026, 1, 1)],
                "funder": ["apa"] * 4 + [None, None, "apa"],
            }
        ],
    ),
    "compound, duplicates across files": (
        "service_plans",
        [
            {"person_id": ["P1"], "month": [date(2026, 1, 1)], "funder": ["apa"]},
            {"person_id": ["P1", "P1"], "month": [date(2026, 1, 1), date(2026, 2, 1)], "funder": ["apa"] * 2},
        ],
    ),
}


@pytest.mark.parametrize("parts", [1, 3])
@pytest.mark.parametrize("case", sorted(_KEY_CASES))
def test_key_tables_count_as_great_expectations_own_uniqueness(tmp_path: Path, case: str, parts: int) -> None:
    """The oracle: Great Expectations' own uniqueness expectation and the key table, run by one checkpoint
    on the same files, give the same outcome (rows, duplicated rows, their share, success), whether the key
    table is built in one grouping or in several (as a large table is: ``key_parts``)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    from quality import sql_dialect
    from quality.suites import (
        KEYS_SUFFIX,
        RESULT_FORMAT,
        _outcome,
        _quiet_context,
        build_key_suite,
        create_key_table,
        suites_connection_config,
    )

    name, frames = _KEY_CASES[case]
    entity = load_contract().entity(name)
    key = list(entity.primary_key)
    schema = {c: (pl.Date if c == "month" else _S) for c in key}
    paths = []
    for i, columns in enumerate(frames):
        path = tmp_path / f"{name}_{i}.parquet"
        pl.DataFrame(columns, schema=schema).write_parquet(path)
        paths.append(path)
    catalogue = tmp_path / "catalogue.duckdb"
    with warehouse.connect(catalogue, config=suites_connection_config(catalogue)) as con:
        con.execute(f"create view raw_{name} as select * from read_parquet({warehouse.parquet_list_sql(paths)})")
        assert create_key_table(con, f"raw_{name}", key, parts) == parts
        assert warehouse.scalar(con, f"select count(*) from raw_{name}{KEYS_SUFFIX}") == sum(
            len(next(iter(c.values()))) for c in frames
        )
    context = _quiet_context()
    source = context.data_sources.add_sql(
        "oracle",
        connection_string=f"{sql_dialect.register()}:///{catalogue.as_posix()}",
        kwargs=sql_dialect.engine_arguments({**suites_connection_config(catalogue), "access_mode": "READ_ONLY"}),
    )
    own = gx.ExpectationSuite(name=f"parcours_{name}")
    meta = {"category": "completeness"}
    own.add_expectation(
        gxe.ExpectColumnValuesToBeUnique(column=key[0], meta=meta)
        if len(key) == 1
        else gxe.ExpectCompoundColumnsToBeUnique(column_list=key, meta=meta)
    )
    definitions = []
    for table, suite in ((name, own), (f"{name}{KEYS_SUFFIX}", build_key_suite(entity))):
        batch = source.add_table_asset(table, table_name=f"raw_{table}").add_batch_definition_whole_table("all")
        definitions.append(
            context.validation_definitions.add(
                gx.ValidationDefinition(name=table, data=batch, suite=context.suites.add(suite))
            )
        )
    result = context.checkpoints.add(
        gx.Checkpoint(name="oracle", validation_definitions=definitions, result_format=RESULT_FORMAT)
    ).run()
    source.get_engine().dispose()
    by_suite = {v.suite_name: _outcome(name, v.results[0]) for v in result.run_results.values()}
    assert by_suite[f"parcours_{name}{KEYS_SUFFIX}"] == by_suite[f"parcours_{name}"]


def test_key_tables_are_built_in_groupings_that_fit_the_memory_limit() -> None:
    """As many groupings as keep each under ``KEY_GROUPS_PER_GB`` keys a GB of the limit; one when the limit
    is no size (a percentage of the machine)."""
    from quality.suites import KEY_GROUPS_PER_GB, key_parts

    gigabyte = 1_000_000_000
    assert key_parts(0, gigabyte) == 1
    assert key_parts(KEY_GROUPS_PER_GB, gigabyte) == 1
    assert key_parts(KEY_GROUPS_PER_GB + 1, gigabyte) == 2
    # The 10,000,000-person federation's service plans under the suites' half of the default 2 GB.
    assert key_parts(239_829_634, 1_000_000_000) == 8
    assert key_parts(239_829_634, None) == 1


def test_suites_read_through_the_engine_not_into_pandas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The datasource is SQL: no frame of the table is ever built (pandas' constructors are not called)."""
    import pandas as pd

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a table was copied into pandas")

    monkeypatch.setattr(pd.DataFrame, "__init__", refuse)
    outcomes = validate_queries({"agencies": _agencies_parquet(tmp_path)}, load_contract(), date(2026, 1, 1))
    assert any(not o.success for o in outcomes)
    assert all(o.element_count == 3 for o in outcomes)


def test_the_pipeline_records_suites_and_writes_a_report(small_run: PipelineRun) -> None:
    with warehouse.connect(small_run.settings.warehouse_path, read_only=True) as con:
        results = warehouse.query(con, "select * from quality_results")
        report = render_report(con)
    assert results["success"].all()
    assert set(results["entity"]) == set(load_contract().entities)
    assert "| AG001 | accepted |" in report
    written = (small_run.settings.data_dir / "reports" / "quality-report.md").read_text()
    assert written.startswith("# Parcours quality report")
    assert "validated every accepted row" in written
    docs = data_docs_folder(small_run.settings.data_dir)
    assert (docs / "index.html").is_file()
    pages = {p.parent.parent.parent.name for p in (docs / "validations").rglob("*.html")}
    # One page for each entity's suite, and one for its key's uniqueness (quality.suites.key_rows_query).
    assert pages == {f"parcours_{e}{s}" for e in load_contract().entities for s in ("", "__keys")}


def test_suites_run_as_blocking_asset_checks() -> None:
    checks = {(k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys}
    for entity in load_contract().entities:
        assert (f"raw_{entity}", "contract_suite") in checks


def test_sensor_requests_a_run_when_files_change(small_federation_dir: Path, tmp_path: Path) -> None:
    """One run per partition the ledger does not know, keyed by its files: evaluated again on the same files,
    the sensor asks for the same run keys, which Dagster never launches twice (a warehouse that knows the
    files gets no request at all: tests/test_operations.py)."""
    resource = ParcoursResource(data_dir=str(tmp_path), landing_dir=str(small_federation_dir / "landing"))
    instance = dg.DagsterInstance.ephemeral()  # the sensor adds the new partitions to it
    context = dg.build_sensor_context(instance=instance, resources={"parcours": resource})
    first = landing_folder_sensor(context)
    assert isinstance(first, dg.SensorResult)
    assert first.run_requests
    assert len({r.partition_key for r in first.run_requests}) == len(first.run_requests)
    assert first.cursor
    unchanged = landing_folder_sensor(
        dg.build_sensor_context(instance=instance, cursor=first.cursor, resources={"parcours": resource})
    )
    assert isinstance(unchanged, dg.SensorResult)
    assert [r.run_key for r in unchanged.run_requests or []] == [r.run_key for r in first.run_requests]


def test_results_outlive_the_connection_that_ran_them() -> None:
    """Great Expectations reads a result after its connection went back to the pool (and was rolled back):
    plain duckdb-engine returns no rows then, the suites' dialect returns them all."""
    import sqlalchemy as sa

    from quality import sql_dialect

    def rows_after_close(url: str) -> list[tuple[int, ...]]:
        engine = sa.create_engine(url)
        with engine.connect() as connection:
            result = connection.execute(sa.text("select 42 as answer union all select 43 order by answer"))
        rows = [tuple(r) for r in result.fetchall()]
        engine.dispose()
        return rows

    assert rows_after_close("duckdb:///:memory:") == []
    assert rows_after_close(f"{sql_dialect.register()}:///:memory:") == [(42,), (43,)]


@pytest.mark.parametrize(
    ("limit", "half"),
    [
        ("2GB", "1GB"),
        ("10 GB", "5GB"),
        ("1.5GiB", "0.75GiB"),
        ("3GB", "1.5GB"),
        ("80%", "40%"),
        ("2gb", "1gb"),
        ("2 gib", "1gib"),
        ("2G", "1G"),
        ("-1", "-1"),
    ],
)
def test_a_memory_limit_is_shared_in_its_own_unit(limit: str, half: str) -> None:
    assert warehouse.share_of_memory_limit(limit, 0.5) == half


def test_the_suites_connections_get_half_the_pipelines_memory_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The suites run in their own process beside the waiting run: two whole limits would not fit the
    run's 4 GiB. What DuckDB applies on the suites' SQLAlchemy connections, not only what is asked."""
    import sqlalchemy as sa

    from quality import sql_dialect

    def applied(config: dict[str, object]) -> str:
        engine = sa.create_engine(f"{sql_dialect.register()}:///:memory:", **sql_dialect.engine_arguments(config))
        with engine.connect() as connection:
            value = connection.execute(sa.text("select current_setting('memory_limit')")).scalar_one()
        engine.dispose()
        return str(value)

    catalogue = tmp_path / "catalogue.duckdb"
    assert applied(suites_connection_config(catalogue)) == "953.6 MiB"  # 1 GB, half the default 2 GB
    monkeypatch.setenv("PARCOURS_DUCKDB_MEMORY_LIMIT", "6GB")
    assert applied(suites_connection_config(catalogue)) == "2.7 GiB"  # 3 GB
    assert warehouse.connection_config(catalogue)["memory_limit"] == "6GB"  # the run's own are unchanged
    monkeypatch.setenv("PARCOURS_DUCKDB_MEMORY_LIMIT", "300MB")
    assert applied(suites_connection_config(catalogue)) == "244.1 MiB"  # the floor, 256 MB, not 150 MB
    monkeypatch.setenv("PARCOURS_DUCKDB_MEMORY_LIMIT", "200MB")
    assert applied(suites_connection_config(catalogue)) == "190.7 MiB"  # the pipeline's own, lower than the floor


def test_the_suites_process_answers_as_the_suites_do_in_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The run's suites run in a child process (``quality.suites_process``): the same outcomes as in this
    process, Data Docs written, no planted value in what comes back or is logged again here."""
    query = {"agencies": _agencies_parquet(tmp_path)}
    caplog.set_level(logging.DEBUG)
    child = SuitesProcess()
    try:
        outcomes = child.validate(query, load_contract(), date(2026, 1, 1), tmp_path / "docs")
        again = child.validate(query, load_contract(), date(2026, 1, 1))  # one child serves every request
    finally:
        child.close()
    assert not child.alive(), "the child ends when its input is closed"
    assert child._child.returncode == 0, "on its own, not killed"
    assert outcomes == validate_queries(query, load_contract(), date(2026, 1, 1)) == again
    assert any(not o.success for o in outcomes)
    assert (tmp_path / "docs" / "index.html").is_file()
    assert PLANTED not in repr(outcomes)
    assert PLANTED not in caplog.text


def test_a_request_overlaps_what_its_caller_does_meanwhile(tmp_path: Path) -> None:
    """``validating``: the answer is read within the block, after the caller's own work; a block left
    without reading it (an exception in the caller's work, an interruption) ends the child at once rather
    than wait for an answer nobody reads; the run's next request starts another."""
    query = {"agencies": _agencies_parquet(tmp_path)}
    child = SuitesProcess()
    try:
        with child.validating(query, load_contract(), date(2026, 1, 1)) as pending:
            outcomes = pending.outcomes()
        assert outcomes == validate_queries(query, load_contract(), date(2026, 1, 1))
        with (
            pytest.raises(RuntimeError, match="own work"),
            child.validating({"agencies": "select 1 as x"}, load_contract(), date(2026, 1, 1)),
        ):
            raise RuntimeError("the caller's own work failed")
        assert not child.alive()
    finally:
        child.close()
    again = SuitesProcess()
    try:
        with again.validating(query, load_contract(), date(2026, 1, 1)):
            pass  # left normally without reading: the answer is read and dropped, the pipe left clean
        assert again.validate(query, load_contract(), date(2026, 1, 1)) == outcomes
    finally:
        again.close()


@pytest.mark.parametrize(
    ("limit", "beside"),
    [("2GB", "1GB"), ("6GB", "3GB"), ("80%", "40%"), ("300MB", "256MB"), ("200MB", "200MB")],
)
def test_the_run_holds_what_the_suites_share_leaves_while_they_run(
    limit: str, beside: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the suites' child validates, the run checks the whole zone under the rest of the pipeline's limit
    (with the suites' floor), then gets its own limit back."""
    from quality.report import beside_the_suites, memory_beside_the_suites

    monkeypatch.setenv("PARCOURS_DUCKDB_MEMORY_LIMIT", limit)
    database = tmp_path / "warehouse.duckdb"
    assert memory_beside_the_suites(database) == beside
    with warehouse.connect(database) as con:
        own = warehouse.scalar(con, "select current_setting('memory_limit')")
        with beside_the_suites(con, database):
            during = warehouse.scalar(con, "select current_setting('memory_limit')")
        assert warehouse.scalar(con, "select current_setting('memory_limit')") == own
    if limit == "2GB":
        assert during == "953.6 MiB"


def test_the_suites_process_reports_what_went_wrong(tmp_path: Path) -> None:
    child = SuitesProcess()
    try:
        with pytest.raises(SuitesProcessError, match="CatalogException"):
            child.validate({"agencies": "select * from no_such_table"}, load_contract(), date(2026, 1, 1))
        assert child.alive(), "a failed request leaves the child serving"
        child._child.kill()
        child._child.wait()
        with pytest.raises(SuitesProcessError, match="ended before answering"):
            child.validate({"agencies": _agencies_parquet(tmp_path)}, load_contract(), date(2026, 1, 1))
    finally:
        child.close()
