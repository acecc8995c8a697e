"""The studies over generated federations: a smoke run here, hundreds of federations per scenario under `make validate`.

`make validate` (``-m slow``) runs every scenario and its null over ``PARCOURS_VALIDATE_FEDERATIONS``
federations (100 by default) in ``PARCOURS_VALIDATE_WORKERS`` processes, writes every result to
``data/generated/validation/`` and checks the targets of issue 12: published 95% intervals cover
the truth in 90-99% of federations; under a null scenario a published interval excludes zero in at
most 5% of them. Figures and their reading: docs/validation.md.
"""

from __future__ import annotations

import os

import numpy as np
import polars as pl
import pytest

from pipelines.impact.validation import (
    CRISIS_WORLDS,
    SAME_NULL_AS_BASELINE,
    Job,
    coverage_target_met,
    run_job,
    run_validation,
    summarise,
)
from pipelines.settings import project_root
from pipelines.synthetic.scenarios import SCENARIOS


def test_one_small_federation_runs_through_the_whole_study_path() -> None:
    rows = run_job(Job("crisis_enrolment", null=True, seed=1, persons=800, agencies=6))
    frame = pl.DataFrame(rows)
    assert set(frame["study"]) == {"unplanned_hospitalisations", "hospitalisations_did"}
    assert (frame["truth"] == 0).all()  # a null world: no effect on the treated
    for row in rows:
        assert row["kind"] in {"effect_detected", "no_effect_detected", "costs_more_than_it_saves", "not_publishable"}
        if row["estimate"] is not None:
            assert row["ci_low"] <= row["estimate"] <= row["ci_high"]
    summary = summarise(frame)
    assert summary.height == 2
    assert set(summary.columns) >= {"published_coverage", "share_published_excluding_zero", "share_publishable"}


def test_coverage_targets() -> None:
    assert coverage_target_met(0.95)
    assert not coverage_target_met(0.89)
    assert not coverage_target_met(1.0)
    assert not coverage_target_met(None)


FEDERATIONS = int(os.environ.get("PARCOURS_VALIDATE_FEDERATIONS", "100"))
WORKERS = int(os.environ.get("PARCOURS_VALIDATE_WORKERS", "2"))


WORLDS = [
    pytest.param(world, null, id=f"{world}-{'null' if null else 'effect'}")
    for world in [*SCENARIOS, *CRISIS_WORLDS]
    for null in (False, True)
    if not (null and world in SAME_NULL_AS_BASELINE)
]


@pytest.mark.slow
@pytest.mark.parametrize(("scenario", "null"), WORLDS)
def test_published_intervals_cover_the_truth_and_nulls_show_no_effect(scenario: str, null: bool) -> None:
    jobs = [Job.for_world(scenario, null, seed) for seed in range(FEDERATIONS)]
    results = run_validation(jobs, WORKERS)
    out = project_root() / "data" / "generated" / "validation"
    out.mkdir(parents=True, exist_ok=True)
    results.write_csv(out / f"{scenario}{'_null' if null else ''}.csv")
    summary = summarise(results)
    summary.write_csv(out / f"{scenario}{'_null' if null else ''}_summary.csv")
    problems = []
    for row in summary.iter_rows(named=True):
        if row["publishable"] >= 20 and not coverage_target_met(row["published_coverage"]):
            problems.append(f"{row['study']}: published coverage {row['published_coverage']:.2f}")
        if null and row["share_published_excluding_zero"] > 0.05:
            problems.append(f"{row['study']}: {row['share_published_excluding_zero']:.0%} published a false effect")
    assert not problems, problems


def test_a_crisis_longer_than_the_washout_is_caught_by_the_dip_check() -> None:
    """The DiD's washout is 4 months; a referral crisis starting 5 to 10 months before enrolment reaches into
    the baseline window, so the treated arm's baseline holds the crisis: the dip check must refuse the DiD
    (a null world, where a DiD fooled by the crisis reports a reduction)."""
    rows = run_job(Job.for_world("crisis_long", null=True, seed=4, persons=6000, studies=("hospitalisations_did",)))
    (row,) = rows
    assert row["scenario"] == "crisis_long"
    assert not row["publishable"]
    assert "pre_enrolment_dip" in row["failed"].split(",")
    assert row["dip_ratio_low"] > 1


def test_crisis_worlds_are_crisis_enrolment_worlds_with_another_crisis() -> None:
    job = Job.for_world("crisis_fall", null=False, seed=1)
    assert (job.scenario, job.crisis, job.world) == ("crisis_enrolment", "fall:14-180", "crisis_fall")
    assert Job.for_world("baseline", null=True, seed=1).world == "baseline"
    assert Job("crisis_enrolment", True, 1, crisis="carer:10-20").world == "crisis_enrolment@carer:10-20"


def test_the_probes_measure_every_variant_on_a_null_world() -> None:
    from pipelines.impact.probes import controls_probe, learners_probe

    row = learners_probe("baseline", 1, persons=1500)
    for name in ("boosting_3_folds", "boosting_5_folds", "boosting_300_trees", "parametric"):
        assert np.isfinite(row[name])
        assert row[f"{name}_se"] > 0
    controls = controls_probe("crisis_lasting", 1, persons=1500)
    assert set(controls) >= {"boosting_main", "boosting_composite", "boosting_share_composite", "parametric_main"}


def test_the_did_probe_runs_the_study_as_specified_and_with_prior_use() -> None:
    from pipelines.impact.probes import did_prior_use_probe

    row = did_prior_use_probe("crisis_lasting", 1, persons=1500)
    for variant in ("as_specified", "prior_use", "washout_use"):
        low, high = row[variant]["uncalibrated"][1:]
        assert low < row[variant]["uncalibrated"][0] < high
        assert isinstance(row[variant]["publishable"], bool)
