"""Every synthetic world through the whole pipeline: it runs, every check passes, and the truth counts
what the models measure.

The truth (``ground_truth["estimands"]``) is computed from the generator's potential outcomes; its
observed side must equal what the warehouse measures with the studies' definitions (the first 365
days of each care-managed episode, person-time cut at the end of follow-up, the 12-month Zarit
change, days without help per interruption seen for 180 days), or the validation would compare
estimates with the wrong number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipelines import warehouse
from pipelines.synthetic.exports import write_landing
from pipelines.synthetic.federation import Federation, FederationSpec, generate_federation
from pipelines.synthetic.scenarios import SCENARIOS
from pipelines.synthetic.truth import NEGATIVE_CONTROL_GROUPS
from tests.conftest import PipelineRun, run_on

FOLLOW_UP_DAYS = 365

MEASURED = """
with episodes as (
    select episode_id, start_date, follow_up_end, least(follow_up_days, $days) as window_days
    from fct_episodes where cohort = 'care_managed'
),
admissions as (
    select admissions.diagnosis_group, admissions.is_planned
    from fct_hospital_admissions as admissions
    inner join episodes on admissions.episode_id = episodes.episode_id
    where admissions.period = 'after'
        and date_diff('day', episodes.start_date, admissions.admission_date) < episodes.window_days
),
repairs as (
    select count(*) as interruptions, cast(sum(ruptures.days_without_help) as bigint) as days
    from fct_ruptures as ruptures
    inner join episodes on ruptures.episode_id = episodes.episode_id
    where ruptures.rupture_type = 'service_interruption' and ruptures.period = 'after'
        and date_diff('day', episodes.start_date, ruptures.rupture_start) < episodes.window_days
        and date_diff('day', ruptures.rupture_start, episodes.follow_up_end) >= 180
),
zarit as (
    select count(*) as carers, sum(load.zarit_change_12m) as change
    from fct_carer_load as load
    inner join episodes on load.episode_id = episodes.episode_id
    where load.zarit_change_12m is not null
)
select
    (select count(*) from episodes) as episodes,
    (select cast(sum(window_days) as bigint) from episodes) as window_days,
    (select count(*) from admissions where not is_planned) as unplanned,
    (select list(diagnosis_group) from admissions where not is_planned) as diagnoses,
    (select interruptions from repairs) as interruptions,
    (select days from repairs) as repair_days,
    (select carers from zarit) as carers,
    (select change from zarit) as zarit_change
"""


@pytest.fixture(scope="module", params=list(SCENARIOS))
def world_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Federation, PipelineRun]:
    spec = FederationSpec(agencies=4, persons=400, seed=21, scenario=request.param)
    federation = generate_federation(spec)
    out = tmp_path_factory.mktemp(request.param)
    write_landing(federation, out)
    run = run_on(out / "landing", out, spec.end_date.isoformat())
    return federation, run


def test_every_world_runs_through_the_pipeline_with_every_check_passing(
    world_run: tuple[Federation, PipelineRun],
) -> None:
    _, run = world_run
    assert run.outcome.success, run.outcome.failures
    assert run.outcome.failed_checks == []
    assert run.outcome.warnings == []


def test_the_truth_counts_what_the_models_measure(world_run: tuple[Federation, PipelineRun]) -> None:
    _truth_counts_what_the_models_measure(*world_run)


def test_the_baseline_truth_counts_what_the_models_measure(
    small_federation: Federation, small_run: PipelineRun
) -> None:
    _truth_counts_what_the_models_measure(small_federation, small_run)


def _truth_counts_what_the_models_measure(federation: Federation, run: PipelineRun) -> None:
    with warehouse.connect(run.settings.warehouse_path, read_only=True) as con:
        measured: dict[str, Any] = warehouse.query(con, MEASURED, {"days": FOLLOW_UP_DAYS}).row(0, named=True)
    truth = federation.ground_truth["estimands"]
    admissions = truth["unplanned_admissions"]
    assert measured["episodes"] == admissions["episodes"]
    assert measured["window_days"] / 365.25 == pytest.approx(admissions["denominator"])
    assert measured["unplanned"] == admissions["observed"]
    diagnoses = measured["diagnoses"] or []
    for group in NEGATIVE_CONTROL_GROUPS:
        assert diagnoses.count(group) == truth[f"admissions_{group}"]["observed"], group
    repair = truth["rupture_repair_days"]
    assert measured["interruptions"] == repair["denominator"]
    assert (measured["repair_days"] or 0) == repair["observed"]
    zarit = truth["zarit_change_12m"]
    assert measured["carers"] == zarit["denominator"]
    assert (measured["zarit_change"] or 0) == pytest.approx(zarit["observed"])


def test_ground_truth_is_written_beside_the_landing_folder(world_run: tuple[Federation, PipelineRun]) -> None:
    federation, run = world_run
    path = Path(run.settings.data_dir) / "ground_truth.json"
    assert path.exists()
    assert federation.ground_truth["scenario"] in path.read_text(encoding="utf-8")
