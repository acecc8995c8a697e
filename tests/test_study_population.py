"""The study population: a linked person's events count once whichever agency sent them, and prior use
is counted in pre-set windows.

The oracle is computed here, independently of the SQL models, from what the agencies export: a
person's events are grouped by their linkage pseudonym, and an event sent by two agencies is one
event (the most copies any one agency sent of that type on that day). After the index date the
generator's potential outcomes give the answer directly.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipelines import warehouse
from pipelines.impact.dataset import study_dataset
from pipelines.impact.spec import PRIOR_USE_COUNTS, PRIOR_USE_WINDOWS, history_months_for, load_studies
from pipelines.impact.study import covariate_matrix
from pipelines.impact.validation import load_federation
from pipelines.synthetic.federation import Federation, FederationSpec, generate_federation

HEADLINE = "unplanned_hospitalisations"


def _each_event_from_one_agency_only(tables: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """The exports with, for every event that two agencies send, one agency's copies removed (in turn, the
    first or the last agency): each event is still sent once, but only the other agency sends it, as when
    an agency's export misses what happened before the person came to it."""
    persons = tables["persons"].select("person_id", "agency_id", "linkage_id")
    events = tables["events"].join(persons, on="person_id")
    key = ["linkage_id", "event_type", "event_date"]
    senders = events.group_by(key).agg(
        pl.col("agency_id").min().alias("first"), pl.col("agency_id").max().alias("last")
    )
    dropped = senders.filter(pl.col("first") != pl.col("last")).with_columns(
        pl.when(pl.col("event_date").dt.day() % 2 == 0).then("first").otherwise("last").alias("agency_id")
    )
    kept = events.join(dropped.select(*key, "agency_id"), on=[*key, "agency_id"], how="anti")
    return {**tables, "events": kept.select(tables["events"].columns)}


@pytest.fixture(scope="module")
def linked() -> Iterator[tuple[Federation, pl.DataFrame]]:
    """A multi-episode federation (people at two agencies sending the same events), each shared event left in
    one agency's export only, and the headline study's dataset on it."""
    federation = generate_federation(FederationSpec(agencies=6, persons=2500, seed=5, scenario="multi_episode"))
    federation.tables = _each_event_from_one_agency_only(federation.tables)
    spec = next(s for s in load_studies() if s.name == HEADLINE)
    with tempfile.TemporaryDirectory() as folder, warehouse.connect(Path(folder) / "w.duckdb") as con:
        load_federation(con, federation.tables)
        yield federation, study_dataset(con, spec)


def _events_once(federation: Federation) -> pl.DataFrame:
    """Each person's events once (by linkage pseudonym), from the exports: per type and day, as many events
    as the agency that sent most of them."""
    persons = federation.tables["persons"].select("person_id", "agency_id", "linkage_id")
    events = federation.tables["events"].join(persons, on="person_id")
    return (
        events.group_by("linkage_id", "event_type", "event_date", "planned", "agency_id")
        .len()
        .group_by("linkage_id", "event_type", "event_date", "planned")
        .agg(pl.col("len").max().alias("events"))
    )


def _episodes(federation: Federation) -> pl.DataFrame:
    persons = federation.tables["persons"].select("person_id", "linkage_id")
    return federation.tables["episodes"].select("episode_id", "person_id", "start_date").join(persons, on="person_id")


def test_prior_use_counts_every_agencys_events_once(linked: tuple[Federation, pl.DataFrame]) -> None:
    federation, data = linked
    once = _events_once(federation)
    kinds = {
        "unplanned_admissions": (pl.col("event_type") == "hospital_admission") & ~pl.col("planned").fill_null(True),
        "emergency_visits": pl.col("event_type") == "emergency_visit",
        "falls": pl.col("event_type") == "fall",
    }
    before = (
        _episodes(federation)
        .join(once, on="linkage_id")
        .with_columns((pl.col("start_date") - pl.col("event_date")).dt.total_days().alias("days_before"))
    )
    expected = before.group_by("episode_id").agg(
        (kinds[event] & pl.col("days_before").is_between(first, last)).cast(pl.Int64).mul(pl.col("events")).sum()
        .alias(name)
        for name, (event, first, last) in PRIOR_USE_COUNTS.items()
    )  # fmt: skip
    measured = data.select("episode_id", *PRIOR_USE_COUNTS)
    compared = measured.join(expected, on="episode_id", how="left", suffix="_expected").fill_null(0)
    for name in PRIOR_USE_COUNTS:
        wrong = compared.filter(pl.col(name) != pl.col(f"{name}_expected"))
        assert wrong.is_empty(), (name, wrong.head(3))
    # The world has what the test is about: episodes whose person's events come from two agencies.
    per_agency = (
        federation.tables["events"]
        .join(federation.tables["persons"].select("person_id", "linkage_id"), on="person_id")
        .group_by("linkage_id")
        .agg(pl.col("person_id").n_unique().alias("senders"))
    )
    linked_people = per_agency.filter(pl.col("senders") > 1)["linkage_id"]
    assert linked_people.len() > 50
    linked_episodes = _episodes(federation).filter(pl.col("linkage_id").is_in(linked_people.implode()))
    assert data.filter(pl.col("episode_id").is_in(linked_episodes["episode_id"].implode())).height > 50


def test_admissions_after_the_index_date_are_the_persons_whichever_agency_sent_them(
    linked: tuple[Federation, pl.DataFrame],
) -> None:
    """Every care-managed episode's unplanned admissions in its window equal the generator's observed count."""
    federation, data = linked
    po = federation.potential_outcomes
    windows = data.select("episode_id", "window_days")
    truth = (
        po.events.join(windows, on="episode_id")
        .filter(
            (pl.col("event_type") == "hospital_admission")
            & ~pl.col("planned").fill_null(False)
            & pl.col("under_treatment")
            & (pl.col("days_from_index") >= 0)
            & (pl.col("days_from_index") < pl.col("window_days"))
        )
        .group_by("episode_id")
        .len()
    )
    treated = data.filter(pl.col("cohort") == "care_managed").select("episode_id", "unplanned_admissions")
    compared = treated.join(truth, on="episode_id", how="left").with_columns(pl.col("len").fill_null(0))
    assert compared.height > 1000
    assert (compared["unplanned_admissions"] == compared["len"]).all()


def test_prior_use_windows_are_contiguous_and_set_the_history_a_study_needs() -> None:
    months = list(PRIOR_USE_WINDOWS.values())
    assert months[0][0] == 0
    assert all(a[1] == b[0] for a, b in itertools.pairwise(months))
    for event in ("unplanned_admissions", "emergency_visits", "falls"):
        ranges = [PRIOR_USE_COUNTS[f"{event}_{w}"][1:] for w in PRIOR_USE_WINDOWS]
        assert ranges[0][0] == 1
        assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(ranges))
    assert PRIOR_USE_COUNTS["unplanned_admissions_12_24m"][1:] == (366, 730)
    assert history_months_for(["age", "falls_0_1m"]) == 1
    assert history_months_for(["prior_unplanned_admissions"]) == 12
    assert history_months_for(["unplanned_admissions_12_24m"]) == 24
    assert history_months_for(["age"]) == 0
    headline = next(s for s in load_studies() if s.name == HEADLINE)
    assert headline.history_months == 24


def test_the_prior_use_model_counts_the_windows_the_studies_name() -> None:
    """``fct_prior_use`` is a plain SQL model; the windows are ``PRIOR_USE_COUNTS``: each count there as written,
    no other, and events read back as far as the longest window."""
    from pipelines.impact.dataset import prior_use_counts

    sql = (Path(__file__).resolve().parent.parent / "models" / "marts" / "fct_prior_use.sql").read_text()
    counts = prior_use_counts().split(",\n")
    assert all(count in sql for count in counts)
    assert sql.count("count(*) filter") == len(counts) == len(PRIOR_USE_COUNTS)
    assert f"<= {max(last for _, _, last in PRIOR_USE_COUNTS.values())}\n" in sql


def test_the_covariate_matrix_is_the_frames_covariates_as_floats_in_the_same_layout(
    linked: tuple[Federation, pl.DataFrame],
) -> None:
    """Filled column by column from the dataset's narrow integer columns: the same values and the same
    (column-major) layout as the frame of them cast to 64-bit floats, so that every sum over it runs alike."""
    _, data = linked
    spec = next(s for s in load_studies() if s.name == HEADLINE)
    x = covariate_matrix(spec, data)
    expected = data.select(f"covariate_{c}" for c in spec.covariates).cast(pl.Float64).to_numpy()
    assert x.dtype == np.float64
    assert x.shape == expected.shape
    assert np.array_equal(x, expected, equal_nan=True)
    assert x.flags["F_CONTIGUOUS"] == expected.flags["F_CONTIGUOUS"]
    narrow = {c: data.schema[f"covariate_{c}"] for c in spec.covariates}
    assert all(dtype in (pl.Int8, pl.Int16) for dtype in narrow.values()), narrow
