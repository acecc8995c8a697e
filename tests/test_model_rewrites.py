"""Models rewritten for speed give the results of the SQL they replaced, on generated federations.

``tests/fixtures/reference_models/`` keeps each replaced model's SQL as it was (a model whose grain
changed keeps it as its readers used it). Each reference query runs on the warehouse the current
models built and must return the very rows of the current table: same rows, as many times each;
floating-point sums may differ in their last digits only (summed in another order).
"""

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines.assets import all_assets
from pipelines.assets.studies import STUDIES_MART
from pipelines.resources import ParcoursResource
from pipelines.synthetic.exports import write_landing
from pipelines.synthetic.federation import FederationSpec, generate_federation

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
