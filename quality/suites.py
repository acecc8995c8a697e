"""Great Expectations suites, one per entity, built from the data contract.

Each expectation is tagged with its category in ``meta``:

* **conformance**: values have the contract's form (allowed codes, text lengths, columns);
* **completeness**: required values are there and keys are unique;
* **plausibility**: values are believable (ranges, no future dates, dates in order, delivered
  hours mostly within granted hours).

Quarantine already removes rows that break a rule, so on the raw tables these suites confirm
the contract holds for everything stored. A failed conformance or completeness expectation
is an error that blocks the models; a failed plausibility expectation is a warning.

Great Expectations is imported lazily (it costs seconds) and runs in an ephemeral context: a
checkpoint over one validation definition per entity, on the accepted rows of the raw zone
read through a SQL datasource (DuckDB over the zone's Parquet files, ``quality.sql_dialect``),
so the engine computes every expectation and no table is copied into pandas. Its Data Docs site
is written as static HTML for analysts. Results are counts only: ``partial_unexpected_count`` is
0 and no unexpected values, rows or index queries are returned, so no case value reaches the
results table, the Data Docs or a log.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pipelines import warehouse
from pipelines.contract import Contract, Entity, allowed_values

CATEGORIES = ("conformance", "completeness", "plausibility")
BLOCKING = frozenset({"conformance", "completeness"})
RESULT_FORMAT = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": 0,
    "include_unexpected_rows": False,
    "return_unexpected_index_query": False,
}
DATA_DOCS_SITE = "parcours_quality"
SUITES_MEMORY_SHARE = 0.5
"""The share of the pipeline's DuckDB memory limit (``warehouse.connection_config``) that the suites'
connections get. They run in a process of their own (``quality.suites_process``) while the run's process
waits, and their uniqueness and value-count aggregations would fill a whole second limit: at 1,000,000
persons the suites' process peaked at 2.4 GiB under the 2 GB limit, 1.4 GiB under 1 GB (spilling, about
5% slower), beside the 0.4 GiB that Great Expectations' imports hold; with the run's process at 0.4-1 GiB
once it has closed the ingestion's connection, the run stays under 4 GiB (docs/benchmarks-notes.md)."""
PLAUSIBLE_DELIVERY_SHARE = 0.95
"""Delivered hours may exceed granted hours now and then, not in more than 5% of months."""


@dataclass(frozen=True)
class ExpectationOutcome:
    entity: str
    category: str
    expectation: str
    column: str | None
    success: bool
    element_count: int
    unexpected_count: int
    unexpected_percent: float


def expectation_specs(entity: Entity, today: date) -> list[tuple[str, str, dict[str, Any]]]:
    """(category, expectation class name, arguments) for every expectation of an entity's suite."""
    specs: list[tuple[str, str, dict[str, Any]]] = []
    for f in entity.fields:
        allowed = allowed_values(f)
        if allowed is not None and not f.list_separator:
            specs.append(("conformance", "ExpectColumnValuesToBeInSet", {"column": f.name, "value_set": list(allowed)}))
        if f.type == "string":
            specs.append(
                ("conformance", "ExpectColumnValueLengthsToBeBetween", {"column": f.name, "max_value": f.max_length})
            )
        if f.required:
            specs.append(("completeness", "ExpectColumnValuesToNotBeNull", {"column": f.name}))
        if f.min is not None or f.max is not None:
            specs.append(
                (
                    "plausibility",
                    "ExpectColumnValuesToBeBetween",
                    {"column": f.name, "min_value": f.min, "max_value": f.max},
                )
            )
        if f.type in ("date", "month"):
            specs.append(
                (
                    "plausibility",
                    "ExpectColumnValuesToBeBetween",
                    {
                        "column": f.name,
                        "min_value": datetime(1900, 1, 1),
                        "max_value": datetime(today.year, today.month, today.day),
                    },
                )
            )
    for earlier, later in entity.date_order:
        specs.append(
            (
                "plausibility",
                "ExpectColumnPairValuesAToBeGreaterThanB",
                {"column_A": later, "column_B": earlier, "or_equal": True, "ignore_row_if": "either_value_is_missing"},
            )
        )
    if {"hours_granted", "hours_delivered"} <= set(entity.field_names):
        specs.append(
            (
                "plausibility",
                "ExpectColumnPairValuesAToBeGreaterThanB",
                {
                    "column_A": "hours_granted",
                    "column_B": "hours_delivered",
                    "or_equal": True,
                    "mostly": PLAUSIBLE_DELIVERY_SHARE,
                },
            )
        )
    return specs


KEY_ROWS_COLUMN = "rows_with_this_key"
KEYS_SUFFIX = "__keys"
"""The key table of an entity: its suite, table asset and validation are named after the entity's with it."""


KEY_GROUPS_PER_GB = 30_000_000
"""How many keys one grouping of a key table may hold per GB of the suites' memory limit. DuckDB's grouping
does not spill far enough when nearly every key is distinct: at 10,000,000 persons the service plans' 240
million rows failed to group under 1 GB, and under 2 GB, on one thread as on two, while a quarter of their
keys (60 million) grouped under 1 GB in 17.6 s and an eighth in 7.0 s (docs/benchmarks-notes.md,
2026-12-01). Half of what passed, for room."""


def key_parts(rows: int, memory_limit_bytes: int | None) -> int:
    """How many groupings a key table of ``rows`` rows is built in (``key_rows_query``'s ``parts``): enough
    that none holds more than ``KEY_GROUPS_PER_GB`` keys a GB of the limit; one under no byte limit."""
    if memory_limit_bytes is None:
        return 1
    per_part = max(1, int(KEY_GROUPS_PER_GB * memory_limit_bytes / 1e9))
    return max(1, -(-rows // per_part))


def key_rows_query(table: str, key: Sequence[str], part: int = 0, parts: int = 1) -> str:
    """One row for each row of ``table``, holding how many rows share its key: the key is unique when no
    value is above 1. A row with its whole key missing holds null (ignored, as a null is by a column's
    expectations); a row with only part of it missing holds 1 (Great Expectations' compound uniqueness
    never finds it a duplicate: a null matches nothing in its join). With ``parts`` above one, only the rows
    whose key hashes to ``part``: the table is then built in ``parts`` groupings (``create_key_table``),
    each key wholly in one of them.

    Why not Great Expectations' own uniqueness expectations: on a SQL datasource they join every row of the
    table to its key's count (a self-join: at 1,000,000 persons, 31 of the suites' 48 s of SQL went to the
    service plans' three-column key). This is one grouping and a row generator, about three times cheaper,
    with their counts: the rows (``element_count``), the duplicated ones (``unexpected_count``) and their
    share of the rows not ignored (``unexpected_percent``), checked against them in tests/test_quality.py."""
    q = warehouse.quote_identifier
    columns = ", ".join(q(c) for c in key)
    whole = " and ".join(f"{q(c)} is not null" for c in key)
    some = " or ".join(f"{q(c)} is not null" for c in key)
    only = f" where hash({columns}) % {parts} = {part}" if parts > 1 else ""
    return (
        f"select case when keys.whole then keys.n when keys.some then 1 end as {KEY_ROWS_COLUMN} "
        f"from (select count(*) as n, any_value({whole}) as whole, any_value({some}) as some "
        f"from {q(table)}{only} group by {columns}) as keys, range(keys.n)"
    )


def create_key_table(con: Any, table: str, key: Sequence[str], parts: int | None = None) -> int:
    """``table``'s key table (``key_rows_query``), named with ``KEYS_SUFFIX``, built in ``parts`` groupings
    (by default as many as ``key_parts`` says for ``table``'s rows under ``con``'s memory limit), one
    statement each: a grouping's memory is given back before the next. Returns ``parts``."""
    if parts is None:
        rows = int(warehouse.scalar(con, f"select count(*) from {warehouse.quote_identifier(table)}"))
        parts = key_parts(rows, warehouse.memory_limit_bytes(con))
    target = warehouse.quote_identifier(f"{table}{KEYS_SUFFIX}")
    for part in range(parts):
        rows_query = key_rows_query(table, key, part, parts)
        con.execute(f"create table {target} as {rows_query}" if part == 0 else f"insert into {target} {rows_query}")
    return parts


def key_expectation_spec(entity: Entity) -> tuple[str, str, dict[str, Any]]:
    """The entity's key uniqueness, on its key table (``key_rows_query``): reported as the uniqueness
    expectation it stands for, on the key's columns (``meta``), and described so in the Data Docs."""
    key = list(entity.primary_key)
    checks = "expect_column_values_to_be_unique" if len(key) == 1 else "expect_compound_columns_to_be_unique"
    return (
        "completeness",
        "ExpectColumnValuesToBeBetween",
        {
            "column": KEY_ROWS_COLUMN,
            "max_value": 1,
            "description": f"No two {entity.name} rows share a key ({', '.join(key)}): each row's "
            f"{KEY_ROWS_COLUMN} counts the rows holding its key",
            "meta": {"checks": checks, "columns": key},
        },
    )


def build_suite(entity: Entity, today: date) -> Any:
    """The entity's ``ExpectationSuite``."""
    return _suite(f"parcours_{entity.name}", expectation_specs(entity, today))


def build_key_suite(entity: Entity) -> Any:
    """The suite of the entity's key table."""
    return _suite(f"parcours_{entity.name}{KEYS_SUFFIX}", [key_expectation_spec(entity)])


def _suite(name: str, specs: list[tuple[str, str, dict[str, Any]]]) -> Any:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=name)
    for category, kind, arguments in specs:
        extra = arguments.get("meta", {})
        given = {k: v for k, v in arguments.items() if k != "meta"}
        suite.add_expectation(getattr(gxe, kind)(**given, meta={"category": category, **extra}))
    return suite


def _quiet_context() -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _add_data_docs_site(context: Any, folder: Path) -> None:
    """Data Docs as static HTML in ``folder`` (index.html): each run's results per entity, every
    expectation with its parameters and its counts and rates (the result format keeps no unexpected
    value)."""
    folder.mkdir(parents=True, exist_ok=True)
    context.add_data_docs_site(
        DATA_DOCS_SITE,
        {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(folder.absolute())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            # The results pages list every expectation with its parameters: the suites' own pages
            # would say it again, and rendering them costs seconds a run.
            "site_section_builders": {"expectations": "0", "profiling": "0"},
        },
    )


def validate_queries(
    queries: dict[str, str],
    contract: Contract,
    today: date,
    engine_config: dict[str, Any] | None = None,
    data_docs: Path | None = None,
) -> list[ExpectationOutcome]:
    """Run every entity's suite, as one checkpoint, on the rows its SQL query returns.

    ``queries``: entity -> a DuckDB ``select`` over files (the raw zone's views: ``read_parquet`` of
    the accepted rows). They become the views of a catalogue (a DuckDB file in a temporary folder, holding
    these views and each entity's key table, ``key_rows_query``) that a Great Expectations SQL datasource
    reads as tables: each expectation is computed by the engine (its metrics bundled into a few aggregate
    queries per table), columns are reflected from the catalogue, and no table is copied into Python.
    ``engine_config``: DuckDB's settings beyond the suites' own (``suites_connection_config``: the
    pipeline's, under a share of its memory limit). ``data_docs``: the folder the Data Docs site is
    written to. Outcomes hold counts and rates only."""
    import great_expectations as gx
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    from quality import sql_dialect

    context = _quiet_context()
    if data_docs is not None:
        _add_data_docs_site(context, data_docs)
    with tempfile.TemporaryDirectory(prefix="parcours-suites-") as folder:
        catalogue = Path(folder) / "raw_zone_views.duckdb"
        with warehouse.connect(catalogue, config=suites_connection_config(catalogue)) as con:
            for name, query in queries.items():
                con.execute(f"create view {warehouse.quote_identifier(f'raw_{name}')} as {query}")
                # A table, not a view: Great Expectations queries a table four times (its rows, its columns,
                # a first row, the metrics), and a view would group the whole entity again each time.
                create_key_table(con, f"raw_{name}", contract.entity(name).primary_key)
        source = context.data_sources.add_sql(
            "parcours_raw_zone",
            connection_string=f"{sql_dialect.register()}:///{catalogue.as_posix()}",
            kwargs=sql_dialect.engine_arguments(
                {**suites_connection_config(catalogue), **(engine_config or {}), "access_mode": "READ_ONLY"}
            ),
        )
        definitions = []
        for name in queries:
            entity = contract.entity(name)
            for table, built in (
                (name, build_suite(entity, today)),
                (f"{name}{KEYS_SUFFIX}", build_key_suite(entity)),
            ):
                batch = source.add_table_asset(table, table_name=f"raw_{table}").add_batch_definition_whole_table("all")
                suite = context.suites.add(built)
                definitions.append(
                    context.validation_definitions.add(
                        gx.ValidationDefinition(name=f"raw_{table}", data=batch, suite=suite)
                    )
                )
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name="parcours_contract",
                validation_definitions=definitions,
                result_format=RESULT_FORMAT,
            )
        )
        try:
            result = checkpoint.run()
            if data_docs is not None:
                # What UpdateDataDocsAction does, once for all entities: the action builds the site, its
                # index included, after each entity's results (nine builds of the index a run).
                context.build_data_docs(
                    site_names=[DATA_DOCS_SITE],
                    resource_identifiers=[
                        identifier
                        for key, validation in result.run_results.items()
                        for identifier in (key, ExpectationSuiteIdentifier(name=validation.suite_name))
                    ],
                )
        finally:
            source.get_engine().dispose()
    outcomes: list[ExpectationOutcome] = []
    for validation in result.run_results.values():
        name = validation.suite_name.removeprefix("parcours_").removesuffix(KEYS_SUFFIX)
        for item in validation.results:
            outcomes.append(_outcome(name, item))
    return outcomes


SUITES_MEMORY_FLOOR = "256MB"
"""The least the suites' connections get (or the pipeline's limit, if lower): reading the raw zone's Parquet
files needs about the same whatever the federation's size (at 1,000,000 persons a plain scan of the events
failed under 100 MB and passed under 200 MB), so half of a small limit is not enough."""


def suites_connection_config(catalogue: Path) -> dict[str, Any]:
    """The pipeline's DuckDB settings for a connection to ``catalogue``, under ``SUITES_MEMORY_SHARE`` of its
    memory limit, never under ``SUITES_MEMORY_FLOOR`` unless the pipeline's own limit is."""
    config = warehouse.connection_config(catalogue)
    return {**config, "memory_limit": floored_share(str(config["memory_limit"]), SUITES_MEMORY_SHARE)}


def floored_share(limit: str, share: float) -> str:
    """``share`` of the memory limit ``limit`` (``warehouse.share_of_memory_limit``), never under
    ``SUITES_MEMORY_FLOOR`` unless ``limit`` is."""
    part = warehouse.share_of_memory_limit(limit, share)
    floor, whole, part_bytes = (warehouse.memory_size_bytes(x) for x in (SUITES_MEMORY_FLOOR, limit, part))
    if floor is not None and whole is not None and part_bytes is not None and part_bytes < floor:
        return limit if whole < floor else SUITES_MEMORY_FLOOR
    return part


def _outcome(entity: str, item: Any) -> ExpectationOutcome:
    config = item.expectation_config
    kwargs = config.kwargs
    meta = config.meta or {}
    column = kwargs.get("column") or ",".join(
        str(c) for c in (kwargs.get("column_list") or [kwargs.get("column_A"), kwargs.get("column_B")]) if c
    )
    if "columns" in meta:  # a key table's expectation stands for the uniqueness of the entity's key
        column = ",".join(str(c) for c in meta["columns"])
    details = item.result or {}
    errored = bool((item.exception_info or {}).get("raised_exception")) or any(
        bool(info.get("raised_exception")) for info in (item.exception_info or {}).values() if isinstance(info, dict)
    )
    return ExpectationOutcome(
        entity=entity,
        category=str(meta.get("category", "conformance")),
        expectation=str(meta.get("checks", config.type)),
        column=column or None,
        success=bool(item.success) and not errored,
        element_count=int(details.get("element_count") or 0),
        unexpected_count=int(details.get("unexpected_count") or 0),
        unexpected_percent=float(details.get("unexpected_percent") or 0.0),
    )
