"""The engine seam: every query the pipeline runs on its data goes through an ``Engine``.

Two implementations: embedded DuckDB (the default, ``pipelines.engines.duckdb``) and Spark
(``pipelines.engines.spark``: a local session, a Spark master, or a cluster through Spark
Connect). SQL is written once, in DuckDB's dialect (``models/``, the model checks, the study
queries under ``pipelines/impact/queries/``); the Spark engine transpiles it with the rewrites of
``pipelines.engines.dialect``. Nothing outside ``pipelines/warehouse.py`` and this package imports
``duckdb`` or ``pyspark`` (tests/test_engine_seam.py).

Whatever the engine, the working DuckDB database (``Engine.working``) keeps what is small, written
row by row and never leaves the analysts' zone: the ledger, the quarantine, the raw zone's manifest,
the study results; the serving snapshots are DuckDB files filled from the engine's marts
(docs/scale-out.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import polars as pl

ENGINES = ("duckdb", "spark")


@dataclass(frozen=True)
class EngineConfig:
    """Which engine a run uses, read from the environment when a run starts (``pipelines.settings``)."""

    kind: str = "duckdb"
    spark_master: str = "local[2]"
    """A Spark master URL (``local[2]``, ``spark://host:7077``, ``yarn``) for a session in this process."""
    spark_remote: str = ""
    """A Spark Connect URL (``sc://host:15002``): how a real cluster is reached. Takes precedence over the master."""
    spark_store: str = ""
    """Where the Spark engine writes its tables (a folder or URI the cluster can write, and this machine
    read); empty: ``<warehouse>_spark/`` beside the working database."""
    spark_conf: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ENGINES:
            raise ValueError(f"PARCOURS_ENGINE must be one of {', '.join(ENGINES)}, got {self.kind!r}")


class Engine(Protocol):
    """The few operations the pipeline needs of an engine. SQL is DuckDB's dialect; ``params`` are
    bound by name (``$name``), never written into the SQL."""

    name: str

    @property
    def working(self) -> Any:
        """The working DuckDB connection (ledger, quarantine, study results, snapshots)."""
        ...

    def run_model(self, name: str, select_sql: str, view: bool = False) -> int:
        """Materialise one model (a table, or with ``view`` whatever the engine's cheapest equivalent is)."""
        ...

    def models_transaction(self) -> AbstractContextManager[None]:
        """Models replaced in the block land together, or none does."""
        ...

    def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any: ...

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pl.DataFrame:
        """A small result (through Arrow), in the order the SQL says."""
        ...

    def registered(self, name: str, frame: pl.DataFrame) -> AbstractContextManager[None]:
        """``frame`` readable as table ``name`` by the queries run in the block."""
        ...

    def to_working(self, tables: Sequence[str]) -> None:
        """Make ``tables`` (the engine's, small) readable in the working database for the snapshots."""
        ...


def model_store(warehouse_path: Path, configured: str) -> str:
    return configured or str(warehouse_path.with_name(f"{warehouse_path.stem}_spark"))


@contextmanager
def open_engine(config: EngineConfig, warehouse_path: Path, sources: Sequence[str] = ()) -> Iterator[Engine]:
    """The configured engine over the working database at ``warehouse_path``; ``sources``: tables the
    models read that Python assets write into the working database (the Spark engine reads them from there)."""
    from pipelines import warehouse

    with warehouse.connect(warehouse_path) as con:
        if config.kind == "spark":
            from pipelines.engines.spark import SparkEngine, spark_session

            yield SparkEngine(spark_session(config), con, model_store(warehouse_path, config.spark_store), sources)
        else:
            from pipelines.engines.duckdb import DuckDBEngine

            yield DuckDBEngine(con)


def as_engine(con: Any) -> Engine:
    """An engine as it is, or a DuckDB connection (tests, the validation harness) as the DuckDB engine."""
    if hasattr(con, "models_transaction"):
        return con
    from pipelines.engines.duckdb import DuckDBEngine

    return DuckDBEngine(con)


def engine_errors() -> tuple[type[BaseException], ...]:
    """What a failed query raises on any engine (Spark's only when pyspark is installed)."""
    from pipelines import warehouse

    errors: list[type[BaseException]] = [warehouse.Error]
    try:
        from pyspark.errors import PySparkException
    except ImportError:  # pragma: no cover - pyspark is a dependency
        return tuple(errors)
    return (*errors, PySparkException)


def query_error(exc: BaseException) -> bool:
    """Whether ``exc`` is about the query or the machine (its message quotes SQL or paths, never data).
    Others (a conversion, a constraint, Spark's ANSI errors) quote the value that failed: a case value."""
    from pipelines import warehouse

    if isinstance(exc, warehouse.QUERY_ERRORS):
        return True
    try:
        from pyspark.errors import AnalysisException, ParseException
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, AnalysisException | ParseException)
