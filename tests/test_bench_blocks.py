"""The benchmark's largest federations are written block by block: no identifier may collide across blocks."""

from pathlib import Path

import polars as pl
import pytest

from pipelines.bench.blocks import write_in_blocks
from pipelines.synthetic.federation import FederationSpec


def _read(landing: Path, entity: str) -> pl.DataFrame:
    return pl.concat(
        [pl.read_csv(path, infer_schema=False) for path in sorted(landing.glob(f"*/*_{entity}.csv"))], how="vertical"
    )


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("blocks")
    spec = FederationSpec(agencies=3, persons=1, months=12, seed=5)
    rows = write_in_blocks(out, persons=250, block_persons=100, spec=spec)
    assert rows > 0
    return out / "landing"


def test_each_block_has_its_own_agencies(landing: Path) -> None:
    folders = sorted(p.name for p in landing.iterdir())
    assert folders == [f"AG{n:03d}" for n in range(1, 10)]  # 3 blocks (100, 100, 50 persons) of 3 agencies
    for folder in folders:
        for path in (landing / folder).glob("*.csv"):
            assert path.name.startswith(f"{folder}_")
            frame = pl.read_csv(path, infer_schema=False)
            if "agency_id" in frame.columns:
                assert set(frame["agency_id"]) <= {folder}, path.name


def test_identifiers_never_collide_across_blocks(landing: Path) -> None:
    persons = _read(landing, "persons")
    assert persons.height == 250
    assert persons["person_id"].n_unique() == 250
    for column in ("person_id", "event_id"):
        ids = _read(landing, "events")[column] if column == "event_id" else persons[column]
        assert ids.n_unique() == ids.len()
    # Every identifier starts with its own agency's pseudonym.
    assert (persons["person_id"].str.slice(0, 5) == persons["agency_id"]).all()
    # Linkage pseudonyms of different blocks differ: no person is linked across blocks by accident.
    agency_block = {f"AG{n:03d}": (n - 1) // 3 for n in range(1, 10)}
    blocks_of_key = (
        persons.with_columns(pl.col("agency_id").replace_strict(agency_block).alias("block"))
        .group_by("linkage_id")
        .agg(pl.col("block").n_unique().alias("blocks"))
    )
    assert blocks_of_key["blocks"].max() == 1


def test_references_stay_within_a_block(landing: Path) -> None:
    persons = set(_read(landing, "persons")["person_id"])
    episodes = _read(landing, "episodes")
    assert set(episodes["person_id"]) <= persons
    assert set(_read(landing, "events")["person_id"]) <= persons
    assert set(_read(landing, "interventions")["episode_id"]) <= set(episodes["episode_id"])
    assert not (landing.parent / "ground_truth.json").exists()
