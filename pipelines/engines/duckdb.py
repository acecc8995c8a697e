"""The default engine: the working DuckDB database itself (one process writes it)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import polars as pl

from pipelines import warehouse


class DuckDBEngine:
    name = "duckdb"

    def __init__(self, con: warehouse.Connection) -> None:
        self._con = con

    @property
    def working(self) -> warehouse.Connection:
        return self._con

    def run_model(self, name: str, select_sql: str, view: bool = False) -> int:
        return warehouse.run_model(self._con, name, select_sql, view=view)

    @contextmanager
    def models_transaction(self) -> Iterator[None]:
        with warehouse.transaction(self._con):
            yield

    def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        return warehouse.scalar(self._con, sql, dict(params) if params is not None else None)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pl.DataFrame:
        return warehouse.query(self._con, sql, dict(params) if params is not None else None)

    @contextmanager
    def registered(self, name: str, frame: pl.DataFrame) -> Iterator[None]:
        with warehouse.registered(self._con, name, frame):
            yield

    def to_working(self, tables: Sequence[str]) -> None:
        """Already there: the models are tables of the working database."""
