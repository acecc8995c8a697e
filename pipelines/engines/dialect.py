"""SQL is written once, in DuckDB's dialect; this is where it becomes Spark SQL.

sqlglot does the translation. What it cannot know (it sees no types) is fixed by the few rewrites
below, each for a difference that changes results or fails on Spark, found by running every
model, model check and study query on both engines (tests/test_spark_engine.py):

1. **Decimal literals are doubles.** Spark types ``1.0`` or ``365.25`` as DECIMAL and keeps the
   scale through ``avg`` and division (``x / 365.25`` rounds to a few decimals); DuckDB computes
   in DOUBLE. Every literal with a decimal point or an exponent is cast to DOUBLE.
2. **The length of a list parameter is ``size``.** DuckDB's ``len($list)`` becomes Spark's string
   ``LENGTH``; when the bound value is a list it becomes ``size``.
3. **Parameters stay bound.** ``$name`` becomes Spark's named marker ``:name`` and the values go
   to ``spark.sql(..., args=...)``: a value is never written into the SQL text.
4. **A distinct count over a window** (``count(distinct x) over (partition by ...)``), which Spark
   refuses, becomes the size of the window's set of values (``size(collect_set(x) over (...))``):
   the same number, nulls left out by both.
5. **A CTE's storage hint is DuckDB's.** ``name as materialized (...)`` or ``as not materialized`` says
   whether DuckDB stores a CTE read more than once or reads it again at each use (the models say it
   where it matters: docs/architecture.md, conventions); Spark has no such words and decides itself: dropped.
6. **Statements other than a query** (``create or replace``, ``attach``, ``register``) are not
   transpiled: the Spark engine writes its tables itself (``pipelines.engines.spark``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlglot
from sqlglot import exp

READ = "duckdb"
SPARK = "spark"


def _double_literals(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Literal) and not node.is_string:
        text = node.name.lower()
        if "." in text or "e" in text:
            return exp.cast(node.copy(), exp.DataType.build("double"))
    return node


def _list_lengths(params: Mapping[str, Any]) -> Any:
    lists = {name for name, value in params.items() if isinstance(value, list | tuple)}

    def rewrite(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Length) and isinstance(node.this, exp.Placeholder) and node.this.name in lists:
            return exp.ArraySize(this=node.this.copy())
        return node

    return rewrite


def _distinct_window_counts(node: exp.Expression) -> exp.Expression:
    if (
        isinstance(node, exp.Window)
        and isinstance(node.this, exp.Count)
        and isinstance(node.this.this, exp.Distinct)
        and len(node.this.this.expressions) == 1
        and not node.args.get("order")
    ):
        window = node.copy()
        window.set("this", exp.ArrayUniqueAgg(this=node.this.this.expressions[0].copy()))
        return exp.ArraySize(this=window)
    return node


def _without_storage_hints(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.CTE) and node.args.get("materialized") is not None:
        bare = node.copy()
        bare.set("materialized", None)
        return bare
    return node


def to_spark(sql: str, params: Mapping[str, Any] | None = None) -> str:
    """One DuckDB query as Spark SQL, with the rewrites above; parameters stay markers."""
    tree = sqlglot.parse_one(sql, read=READ)
    tree = tree.transform(_double_literals).transform(_distinct_window_counts).transform(_without_storage_hints)
    if params:
        tree = tree.transform(_list_lengths(params))
    return tree.sql(dialect=SPARK)


def spark_args(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Bound values as Spark takes them (a tuple as a list: an array)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in (params or {}).items()}
