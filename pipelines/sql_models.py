"""Discover the SQL models under ``models/`` and derive their dependencies from the SQL.

A model is a file ``models/<layer>/<name>.sql`` holding one ``select``; the pipeline stores it
as table ``<name>``. Dependencies are the tables the query reads, found by parsing it with
sqlglot, never listed by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from graphlib import TopologicalSorter
from pathlib import Path

import sqlglot
from sqlglot import exp

LAYERS = {"stg": "staging", "int": "intermediate", "fct": "marts", "mart": "marts", "ops": "ops"}
"""Name prefix of a model and the folder it belongs in."""

VIEW_LAYERS = frozenset({"staging"})
"""Layers defined as views, not tables: staging models rename and lightly normalise one raw table each,
so storing them would copy every raw row once more (a fifth of the models' time at 100,000 persons)
to save nothing: their readers scan the raw table through the view as fast as they would scan a copy."""

SERVED_PREFIXES = ("mart_", "ops_")
"""Only marts (aggregates) and ops tables (file ledger and check counts, for analysts) leave the
warehouse: they are what the serving snapshot holds."""


@dataclass(frozen=True)
class SqlModel:
    name: str
    layer: str
    path: Path
    sql: str
    depends_on: tuple[str, ...]
    description: str

    @property
    def is_view(self) -> bool:
        return self.layer in VIEW_LAYERS

    @property
    def is_served(self) -> bool:
        return self.name.startswith(SERVED_PREFIXES)


class ModelError(ValueError):
    pass


def tables_read(sql: str, dialect: str = "duckdb") -> set[str]:
    """Tables a query reads, CTE names excluded."""
    return set(_tables_read(sql, dialect))


@cache
def _tables_read(sql: str, dialect: str) -> frozenset[str]:
    # Parsed once per process: the definitions list the models more than once as they load (the models'
    # step, the served models), and parsing forty models costs about half a second each time.
    tree = sqlglot.parse_one(sql, read=dialect)
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    return frozenset(t.name for t in tree.find_all(exp.Table) if t.name and t.name not in ctes)


def _description(sql: str) -> str:
    lines = []
    for line in sql.splitlines():
        stripped = line.strip()
        if not stripped.startswith("--"):
            break
        lines.append(stripped.removeprefix("--").strip())
    return " ".join(lines)


def discover_models(models_dir: Path, sources: set[str]) -> list[SqlModel]:
    """Every model in dependency order; ``sources`` are the tables that Python assets write."""
    found: dict[str, tuple[Path, str, str]] = {}
    for path in sorted(models_dir.rglob("*.sql")):
        name = path.stem
        prefix = name.split("_", 1)[0]
        layer = LAYERS.get(prefix)
        if layer is None:
            raise ModelError(f"{path}: a model name starts with one of {sorted(LAYERS)}_")
        if path.parent.name != layer:
            raise ModelError(f"{path}: a {prefix}_ model belongs in models/{layer}/")
        if name in found:
            raise ModelError(f"{path}: model {name} is defined twice")
        found[name] = (path, layer, path.read_text(encoding="utf-8"))

    models: dict[str, SqlModel] = {}
    for name, (path, layer, sql) in found.items():
        try:
            reads = tables_read(sql)
        except sqlglot.errors.ParseError as exc:
            raise ModelError(f"{path}: SQL does not parse: {exc}") from None
        unknown = sorted(reads - set(found) - sources)
        if unknown:
            raise ModelError(f"{path}: reads {unknown}, which no model or source asset produces")
        models[name] = SqlModel(name, layer, path, sql, tuple(sorted(reads)), _description(sql))

    order = TopologicalSorter({m.name: [d for d in m.depends_on if d in models] for m in models.values()})
    try:
        return [models[name] for name in order.static_order()]
    except Exception as exc:
        raise ModelError(f"models depend on each other in a cycle: {exc}") from None
