"""The Spark engine: the models, their checks and the study queries on a Spark session.

A session in this process (``PARCOURS_SPARK_MASTER``, ``local[2]`` by default) or a cluster reached
through Spark Connect (``PARCOURS_SPARK_REMOTE=sc://host:15002``); the same code drives both.

**Where tables live.** Spark keeps no tables between sessions without a metastore, and a cluster's
metastore is not ours to require; so the engine writes each model as Parquet under its store
(``<store>/<model>/<stamp>/``) and lists the current folder of each in the working database
(``spark_models``), as the raw zone lists its files. A run's models are listed in one DuckDB
transaction at the end: a failed run leaves the previous list, and its folders are removed.

**What it reads.** A query's tables are made readable on first use: a model from its listed
folder; ``raw_<entity>`` from the raw zone's Parquet files (the zone's manifest says which, the
working database's view says the columns and types); a small source table that Python assets write
(reference tables, run parameters, the quality results) copied once from the working database.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from pipelines import warehouse
from pipelines.engines.dialect import spark_args, to_spark
from pipelines.sql_models import tables_read

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from pipelines.engines import EngineConfig

MODELS_TABLE = "spark_models"
MODELS_COLUMNS = (("name", "VARCHAR"), ("location", "VARCHAR"), ("rows", "BIGINT"), ("written_at", "TIMESTAMP"))

SPARK_TYPES = {
    "VARCHAR": "string",
    "BIGINT": "bigint",
    "INTEGER": "int",
    "DOUBLE": "double",
    "DATE": "date",
    "BOOLEAN": "boolean",
    "TIMESTAMP": "timestamp_ntz",
}
"""DuckDB column types of the raw zone and their Spark equivalents."""

LOCAL_DEFAULTS = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.driver.memory": "2g",
}
"""A session in this process on a small machine: no web UI, few shuffle partitions (200 by default,
each a task, for tables of a few thousand rows)."""

SESSION_DEFAULTS = {"spark.sql.session.timeZone": "UTC", "spark.sql.timestampType": "TIMESTAMP_NTZ"}
"""Dates and timestamps carry no zone in Parcours (DuckDB's TIMESTAMP): Spark must not shift them."""

_SESSIONS: dict[tuple[str, str, tuple[tuple[str, str], ...]], SparkSession] = {}


def spark_session(config: EngineConfig) -> SparkSession:
    """One session for the life of the process (starting one takes seconds), replaced when the process
    asks for another master or Connect URL."""
    key = (config.spark_remote, config.spark_master, config.spark_conf)
    if key in _SESSIONS:
        return _SESSIONS[key]
    from pyspark.sql import SparkSession

    # pyspark refuses a Spark Connect session beside a session in the process (and the reverse):
    # a process changing engines stops the sessions it started before.
    for other in list(_SESSIONS):
        _SESSIONS.pop(other).stop()

    builder = SparkSession.builder
    if config.spark_remote:
        builder = builder.remote(config.spark_remote)
        settings = dict(SESSION_DEFAULTS)
    else:
        builder = builder.master(config.spark_master).appName("parcours")
        settings = {**LOCAL_DEFAULTS, **SESSION_DEFAULTS}
    for name, value in {**settings, **dict(config.spark_conf)}.items():
        builder = builder.config(name, value)
    session = builder.getOrCreate()
    if not config.spark_remote:
        session.sparkContext.setLogLevel("ERROR")
    _SESSIONS[key] = session
    return session


def _is_local(location: str) -> bool:
    return "://" not in location or location.startswith("file://")


def _remove(location: str) -> None:
    if _is_local(location):
        shutil.rmtree(location.removeprefix("file://"), ignore_errors=True)


class SparkEngine:
    name = "spark"

    def __init__(self, spark: SparkSession, working: warehouse.Connection, store: str, sources: Sequence[str]) -> None:
        self._spark = spark
        self._con = working
        self._store = store.rstrip("/")
        self._sources = set(sources)
        self._readable: set[str] = set()
        self._written: dict[str, tuple[str, int]] | None = None
        warehouse.create_empty_table(working, MODELS_TABLE, MODELS_COLUMNS, replace=False)

    @property
    def working(self) -> warehouse.Connection:
        return self._con

    # -- where tables are ------------------------------------------------------------------------

    def _listed(self, name: str) -> str | None:
        if self._written is not None and name in self._written:
            return self._written[name][0]
        location = warehouse.scalar(self._con, f"select location from {MODELS_TABLE} where name = ?", [name])
        return str(location) if location else None

    def _raw(self, name: str) -> DataFrame | None:
        from pyspark.sql import functions as F

        from pipelines.ingest.raw_zone import RawZone, listed_files

        entity = name.removeprefix("raw_")
        files = listed_files(self._con, entity)
        if not files.height:
            return None  # copied from the (empty) view, with its types
        zone = RawZone.of(self._con)
        paths = [str(zone.absolute(p)) for p in files["path"].to_list()]
        columns = warehouse.query(self._con, f"describe {warehouse.quote_identifier(name)}")
        # Files written under different contract versions differ in columns: only then merge their schemas
        # (a job reading every file's footer); otherwise Spark reads one footer.
        merge = files["columns"].n_unique() > 1
        frame = self._spark.read.option("mergeSchema", str(merge).lower()).parquet(*paths)
        present = set(frame.columns)
        selected = []
        for column, kind in zip(columns["column_name"].to_list(), columns["column_type"].to_list(), strict=True):
            spark_type = SPARK_TYPES.get(kind)
            if spark_type is None:
                raise ValueError(f"{name}.{column}: no Spark type for DuckDB's {kind}")
            value = F.col(f"`{column}`") if column in present else F.lit(None)
            selected.append(value.cast(spark_type).alias(column))
        return frame.select(*selected)

    def _make_readable(self, name: str) -> None:
        if name in self._readable:
            return
        location = self._listed(name)
        frame: DataFrame | None = None
        if location is not None:
            frame = self._spark.read.parquet(location)
        elif name in self._sources and warehouse.table_exists(self._con, name):
            if name.startswith("raw_"):
                frame = self._raw(name)
            if frame is None:
                copied = warehouse.query(self._con, f"select * from {warehouse.quote_identifier(name)}")
                frame = self._from_polars(copied)
        if frame is not None:
            frame.createOrReplaceTempView(name)
            self._readable.add(name)

    def _from_polars(self, frame: pl.DataFrame) -> DataFrame:
        """A (small) frame as a Spark frame, through Arrow; its schema said, since Spark Connect will not
        infer one from no rows."""
        from pyspark.sql.pandas.types import from_arrow_schema

        table = frame.to_arrow()
        return self._spark.createDataFrame(table, schema=from_arrow_schema(table.schema))

    def _frame(self, sql: str, params: Mapping[str, Any] | None = None) -> DataFrame:
        for table in sorted(tables_read(sql)):
            self._make_readable(table)
        args = spark_args(params)
        return self._spark.sql(to_spark(sql, params), args=args or None)

    # -- the engine's operations -------------------------------------------------------------------

    def run_model(self, name: str, select_sql: str, view: bool = False) -> int:
        """Every model is written (a Spark view would not outlive the session); ``view`` is DuckDB's economy."""
        location = f"{self._store}/{name}/{time.time_ns():x}"
        self._frame(select_sql).write.mode("overwrite").parquet(location)
        written = self._spark.read.parquet(location)
        written.createOrReplaceTempView(name)
        self._readable.add(name)
        rows = written.count()
        if self._written is None:  # outside a transaction: listed at once
            self._list({name: (location, rows)})
        else:
            self._written[name] = (location, rows)
        return rows

    def _list(self, written: Mapping[str, tuple[str, int]]) -> None:
        if not written:
            return
        names = list(written)
        previous = warehouse.query(
            self._con, f"select location from {MODELS_TABLE} where list_contains($names, name)", {"names": names}
        )["location"].to_list()
        with warehouse.transaction(self._con):
            self._con.execute(f"delete from {MODELS_TABLE} where list_contains($names, name)", {"names": names})
            warehouse.insert_frame(
                self._con,
                MODELS_TABLE,
                pl.DataFrame(
                    {
                        "name": names,
                        "location": [written[n][0] for n in names],
                        "rows": [written[n][1] for n in names],
                    }
                ).with_columns(pl.lit(None, dtype=pl.Datetime("us")).alias("written_at")),
            )
            self._con.execute(f"update {MODELS_TABLE} set written_at = now()::timestamp where written_at is null")
        for location in previous:
            _remove(location)
        if _is_local(self._store):  # what a killed run left beside the listed folders
            for name, (location, _) in written.items():
                folder = Path(self._store.removeprefix("file://")) / name
                current = Path(location.removeprefix("file://"))
                for child in folder.iterdir() if folder.is_dir() else ():
                    if child != current:
                        shutil.rmtree(child, ignore_errors=True)

    @contextmanager
    def models_transaction(self) -> Iterator[None]:
        self._written = {}
        try:
            yield
        except BaseException:
            written, self._written = self._written, None
            for name, (location, _) in written.items():
                _remove(location)
                self._readable.discard(name)  # read again from the listed folder, if there is one
                if self._listed(name) is None:
                    self._spark.catalog.dropTempView(name)
            raise
        written, self._written = self._written, None
        self._list(written)

    def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        rows = self._frame(sql, params).collect()
        return rows[0][0] if rows else None

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pl.DataFrame:
        result = pl.from_arrow(self._frame(sql, params).toArrow())
        assert isinstance(result, pl.DataFrame)
        # A Spark TIMESTAMP (with local time zone, UTC in our sessions) comes back zoned; ours are naive.
        zoned = [c for c, t in result.schema.items() if isinstance(t, pl.Datetime) and t.time_zone is not None]
        return result.with_columns(pl.col(c).dt.convert_time_zone("UTC").dt.replace_time_zone(None) for c in zoned)

    @contextmanager
    def registered(self, name: str, frame: pl.DataFrame) -> Iterator[None]:
        self._from_polars(frame).createOrReplaceTempView(name)
        self._readable.add(name)
        try:
            yield
        finally:
            self._spark.catalog.dropTempView(name)
            self._readable.discard(name)

    def to_working(self, tables: Sequence[str]) -> None:
        for name in tables:
            warehouse.replace_table(self._con, name, self.query(f"select * from {warehouse.quote_identifier(name)}"))
