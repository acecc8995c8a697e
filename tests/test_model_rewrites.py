"""Models rewritten for speed give the results of the SQL they replaced, on generated federations.

``tests/fixtures/reference_models/`` keeps each replaced model's SQL as it was (a model whose grain
changed keeps it as its readers used it). Each reference query runs on the warehouse the current
models built and must return the very rows of the current table: same rows, as many times each;
floating-point sums may differ in their last digits only (summed in another order).
"""

import re
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlglot import exp

from pipelines.assets import all_assets
from pipelines.assets.model_checks import MODEL_CHECKS
from pipelines.assets.models import sql_models
from pipelines.assets.studies import STUDIES_MART
from pipelines.impact.dataset import study_dataset_parameters, study_dataset_sql
from pipelines.impact.spec import load_studies
from pipelines.resources import ParcoursResource
from pipelines.synthetic.exports import write_landing
from pipelines.synthetic.federation import FederationSpec, generate_federation

ROOT = Path(__file__).resolve().parent.parent
REFERENCES = Path(__file__).parent / "fixtures" / "reference_models"
WORLDS = {
    "baseline": FederationSpec(agencies=6, persons=900, months=30, seed=11),
    # Several and overlapping episodes, persons at two agencies that send the same events and hours.
    "multi_episode": FederationSpec(agencies=6, persons=900, months=30, seed=12, scenario="multi_episode"),
}


@pytest.fixture(scope="module", params=sorted(WORLDS))
def models_warehouse(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ingestion and every SQL model on a generated federation (no studies, no publication)."""
    out = tmp_path_factory.mktemp(f"rewrites_{request.param}")
    write_landing(generate_federation(WORLDS[request.param]), out)
    selection = (
        dg.AssetSelection.all()
        - dg.AssetSelection.groups("studies", "serving")
        - dg.AssetSelection.assets(STUDIES_MART)
    )
    result = dg.materialize(
        all_assets(),
        resources={"parcours": ParcoursResource(data_dir=str(out))},
        selection=selection,
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    return ParcoursResource(data_dir=str(out)).settings().warehouse_path


def _comparable(con: duckdb.DuckDBPyConnection, relation: str) -> str:
    """The relation's columns, floating-point ones rounded (sums in another order differ in their last digits)."""
    columns = con.execute(f"describe {relation}").fetchall()
    return ", ".join(
        f"round({name}, 6) as {name}" if kind in ("DOUBLE", "FLOAT") else name for name, kind, *_ in columns
    )


@pytest.mark.parametrize("reference", sorted(p.stem for p in REFERENCES.glob("*.sql")))
def test_a_rewritten_model_returns_what_it_replaced(models_warehouse: Path, reference: str) -> None:
    con = duckdb.connect(str(models_warehouse), read_only=True)
    try:
        con.execute(f"create temporary view reference as {(REFERENCES / f'{reference}.sql').read_text()}")
        current = con.execute(f"describe {reference}").fetchall()
        replaced = con.execute("describe reference").fetchall()
        assert [c[:2] for c in current] == [c[:2] for c in replaced]  # same columns, same types
        rows = con.execute(f"select count(*) from {reference}").fetchall()[0][0]
        assert rows > 0
        for left, right in ((reference, "reference"), ("reference", reference)):
            extra = con.execute(
                f"select count(*) from (select {_comparable(con, left)} from {left} "
                f"except all select {_comparable(con, right)} from {right})"
            ).fetchall()[0][0]
            assert extra == 0, f"{extra} of {rows} rows of {left} are not in {right}"
    finally:
        con.close()


def _plan(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> str:
    return "\n".join(row[1] for row in con.execute(f"explain {sql}", params or None).fetchall())


def _queries_with_ctes() -> list[tuple[str, str, dict[str, Any]]]:
    """The queries of ours over the models, with the values they bind: the SQL models, their checks and each
    study's dataset (the ingestion's queries are built per file and entity: not here)."""
    models: list[tuple[str, str, dict[str, Any]]] = [(model.name, model.sql, {}) for model in sql_models()]
    models += [(f"check {check.asset}.{check.name}", check.violations_sql, {}) for check in MODEL_CHECKS]
    studies = [
        (f"dataset of {spec.name}", study_dataset_sql(spec), study_dataset_parameters(spec)) for spec in load_studies()
    ]
    return models + studies


def test_duckdb_stores_only_the_ctes_a_query_says_it_stores(models_warehouse: Path) -> None:
    """A CTE that DuckDB's plan reads more than once is stored whole first unless the query says
    ``not materialized`` (docs/architecture.md): every stored CTE of the plan of every model, model check and
    study dataset is one the query declares ``materialized``. DuckDB's own CTEs (``__``-prefixed, its rewrite
    of repeated aggregates) aside."""
    con = duckdb.connect(str(models_warehouse), read_only=True)
    try:
        undeclared = {}
        for name, sql, params in _queries_with_ctes():
            plan = _plan(con, sql, params)
            stored = {cte for cte in re.findall(r"CTE Name: (\w+)", plan) if not cte.startswith("__")}
            tree = sqlglot.parse_one(sql, read="duckdb")
            declared = {cte.alias for cte in tree.find_all(exp.CTE) if cte.args.get("materialized") is True}
            if stored - declared:
                undeclared[name] = sorted(stored - declared)
        assert not undeclared, f"CTEs DuckDB stores whole though their queries do not say so: {undeclared}"
    finally:
        con.close()


def test_the_check_of_stored_ctes_sees_a_cte_read_twice() -> None:
    """The plan's words the check above reads: a CTE read twice is stored unless it says otherwise."""
    con = duckdb.connect()
    try:
        con.execute("create table t as select range as x from range(10)")
        twice = "with a as{} (select * from t where x > 2) select * from a, a as b"
        assert "CTE Name: a" in _plan(con, twice.format(""))
        assert "CTE Name" not in _plan(con, twice.format(" not materialized"))
    finally:
        con.close()


# --- the ruptures mart's medians read from counts of days, against DuckDB's own median -------------------

_DAYS = st.one_of(st.none(), st.integers(min_value=-3, max_value=40))
_RUPTURE = st.tuples(
    st.integers(min_value=1, max_value=6),  # episode
    st.sampled_from(["before", "after"]),
    st.sampled_from(["home_help", "carer"]),
    st.booleans(),  # is_open
    _DAYS,
    _DAYS,
    _DAYS,
    st.booleans(),  # repaired within target
    st.booleans(),  # is_attributed
)


@settings(max_examples=60, deadline=None)
@given(ruptures=st.lists(_RUPTURE, min_size=1, max_size=40))
def test_the_ruptures_mart_gives_duckdb_s_medians_and_counts(ruptures: list[tuple[Any, ...]]) -> None:
    """Odd and even counts, repeated and negative days, measures all unknown in a group, breakdown values
    that are null, ruptures not attributed: the mart's rows equal the replaced SQL's (DuckDB's ``median``)."""
    con = duckdb.connect()
    try:
        con.execute(
            "create table fct_ruptures (episode_id varchar, person_key varchar, period varchar, "
            "rupture_type varchar, is_open boolean, days_without_help bigint, days_to_detection bigint, "
            "days_to_repair bigint, repaired_within_target boolean, is_attributed boolean)"
        )
        con.executemany(
            "insert into fct_ruptures values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(f"e{r[0]}", f"p{int(r[0]) % 4}", *r[1:]) for r in ruptures],
        )
        # Episodes 1-6 in two cohorts; their département unknown for episodes 5 and 6.
        con.execute(
            "create table int_episode_dimension_pairs as "
            "select 'e' || i as episode_id, case when i % 2 = 0 then 'managed' else 'comparison' end as cohort, "
            "dimension, case when dimension = 'departement' and i >= 5 then null "
            "when dimension = 'all' then 'all' else 'v' || (i % 3) end as dimension_value "
            "from range(1, 7) as e(i), (values ('all'), ('agency'), ('departement')) as d(dimension)"
        )
        con.execute(f"create view current as {(ROOT / 'models' / 'marts' / 'mart_ruptures.sql').read_text()}")
        con.execute(f"create view reference as {(REFERENCES / 'mart_ruptures.sql').read_text()}")
        assert [c[:2] for c in con.execute("describe current").fetchall()] == [
            c[:2] for c in con.execute("describe reference").fetchall()
        ]
        for left, right in (("current", "reference"), ("reference", "current")):
            extra = con.execute(
                f"select count(*) from (select {_comparable(con, left)} from {left} "
                f"except all select {_comparable(con, right)} from {right})"
            ).fetchall()[0][0]
            assert extra == 0
    finally:
        con.close()
