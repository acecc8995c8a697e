"""The quarterly cycle end to end: two quarters of a generated federation, a corrected re-send between
them, partitions that re-run alone, two releases that rebuild to the same figures, an amendment shown.

One shared run (module fixture) keeps the suite fast: 3 agencies, 240 persons, one study with few
bootstrap replicates, in a study folder of its own (``PARCOURS_STUDIES_DIR``)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from pipelines.assets.ingestion import AGENCY_EXPORTS
from pipelines.cli import main
from pipelines.impact.registration import amend, register
from pipelines.impact.spec import studies_dir
from pipelines.operations.releases import (
    earlier_shown_cells,
    list_releases,
    read_manifest,
    release_path,
    releases_dir,
)
from pipelines.operations.reproduce import Reproduction, reproduce
from pipelines.partitions import LANDING_PARTITIONS
from pipelines.publication.rules import MAX_NOISE
from pipelines.resources import ParcoursResource
from pipelines.run import RunOutcome, run_pipeline
from pipelines.sensors import INGEST_JOB, landing_folder_sensor
from pipelines.synthetic.exports import split_by_agency
from pipelines.synthetic.federation import FederationSpec, generate_federation

SPEC = FederationSpec(agencies=3, persons=240, months=24, seed=11)
Q1_END = date(2026, 3, 31)
DATED = {
    "episodes": "start_date",
    "events": "event_date",
    "assessments": "assessment_date",
    "interventions": "intervention_date",
}
"""Entities split between the quarters by a date: a row goes to the first quarter's export when its date
is in it; the others (persons, carers, agencies, care managers, service plans) are sent whole with the
first quarter, service plans by month."""
STUDY = "carer_burden"
AMENDMENT = "bootstrap replicates raised from 50 to 60 to steady the interval"


def quarter_exports(landing: Path) -> dict[str, dict[str, dict[str, pl.DataFrame]]]:
    """Each quarter's export of each agency: ``{period: {agency: {entity: rows}}}``."""
    federation = generate_federation(SPEC)
    exports: dict[str, dict[str, dict[str, pl.DataFrame]]] = {"202603": {}, "202606": {}}
    for agency, entities in split_by_agency(federation).items():
        first, second = {}, {}
        for entity, frame in entities.items():
            if entity in DATED:
                early = pl.col(DATED[entity]) <= Q1_END
            elif entity == "service_plans":
                early = pl.col("month").cast(pl.String).str.slice(0, 7) <= Q1_END.isoformat()[:7]
            else:
                early = pl.lit(True)
            first[entity] = frame.filter(early)
            second[entity] = frame.filter(~early)
        exports["202603"][agency] = first
        exports["202606"][agency] = second
    return exports


def write_export(landing: Path, period: str, agency: str, entities: dict[str, pl.DataFrame]) -> None:
    folder = landing / agency
    folder.mkdir(parents=True, exist_ok=True)
    for entity, frame in entities.items():
        frame.write_csv(folder / f"{agency}_{period}_{entity}.csv", date_format="%Y-%m-%d")


@dataclass
class Cycle:
    data_dir: Path
    instance: dg.DagsterInstance
    first: RunOutcome
    second: RunOutcome
    sensor_at_start: dg.SensorResult
    sensor_after_resend: dg.SensorResult
    reproductions: dict[str, Reproduction]


def _resource(data_dir: Path, cutoff: date, release: str) -> ParcoursResource:
    return ParcoursResource(
        data_dir=str(data_dir), landing_dir=str(data_dir / "landing"), data_cutoff=cutoff.isoformat(), release=release
    )


def _sensor(instance: dg.DagsterInstance, resource: ParcoursResource) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, resources={"parcours": resource})
    result = landing_folder_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


@pytest.fixture(scope="module")
def cycle(tmp_path_factory: pytest.TempPathFactory) -> Cycle:
    data_dir = tmp_path_factory.mktemp("quarters")
    studies = data_dir / "studies"
    studies.mkdir()
    spec = yaml.safe_load((studies_dir() / f"{STUDY}.yaml").read_text(encoding="utf-8"))
    spec.update({"bootstrap": 50, "subgroups": []})
    (studies / f"{STUDY}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    landing = data_dir / "landing"
    exports = quarter_exports(landing)
    instance = dg.DagsterInstance.ephemeral()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PARCOURS_STUDIES_DIR", str(studies))
        register(STUDY, "the federation's analyst")
        # Quarter 1: every agency's export, then the release.
        for agency, entities in exports["202603"].items():
            write_export(landing, "202603", agency, entities)
        first = run_pipeline(_resource(data_dir, Q1_END, "2026-Q1"), instance=instance, log_level="OFF")
        assert first.success, first.failures + first.failed_checks
        # The UI starts on an up-to-date warehouse: the sensor starts nothing.
        at_start = _sensor(instance, _resource(data_dir, Q1_END, ""))
        # AG002 re-sends its first quarter's persons, corrected: the sensor ingests that partition alone.
        persons = exports["202603"]["AG002"]["persons"]
        corrected = persons.with_columns(
            pl.when(pl.int_range(pl.len()) == 0).then(pl.col("birth_year") - 1).otherwise(pl.col("birth_year"))
        )
        write_export(landing, "202603", "AG002", {"persons": corrected})
        after_resend = _sensor(instance, _resource(data_dir, Q1_END, ""))
        from pipelines.definitions import defs

        instance.add_dynamic_partitions(
            LANDING_PARTITIONS.name or "landing",
            [r.partition_key for r in after_resend.run_requests or [] if r.partition_key],
        )
        job = defs.resolve_job_def(INGEST_JOB)
        for request in after_resend.run_requests or []:
            resend = job.execute_in_process(
                instance=instance,
                partition_key=request.partition_key,
                resources={"parcours": _resource(data_dir, Q1_END, "")},
            )
            assert resend.success
        # The plan changes before the second quarter: an amendment, with its reason.
        spec["bootstrap"] = 60
        (studies / f"{STUDY}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        amend(STUDY, AMENDMENT, "the federation's analyst")
        # Quarter 2.
        q2_end = date(2026, 6, 30)
        for agency, entities in exports["202606"].items():
            write_export(landing, "202606", agency, entities)
        second = run_pipeline(_resource(data_dir, q2_end, "2026-Q2"), instance=instance, log_level="OFF")
        assert second.success, second.failures + second.failed_checks
    # Years later: the studies folder and the landing folder are gone; the releases and kept inputs remain.
    shutil.rmtree(studies)
    shutil.rmtree(landing)
    rebuilt = {
        name: reproduce(release_path(releases_dir(data_dir), name), tmp_path_factory.mktemp(f"rebuild-{name}"))
        for name in ("2026-Q1", "2026-Q2")
    }
    return Cycle(data_dir, instance, first, second, at_start, after_resend, rebuilt)


def _materialised_partitions(instance: dg.DagsterInstance) -> Counter[str]:
    records = instance.fetch_materializations(dg.AssetKey(AGENCY_EXPORTS), limit=1000).records
    return Counter(r.partition_key for r in records if r.partition_key)


def test_only_the_partitions_that_changed_are_ingested(cycle: Cycle) -> None:
    assert not cycle.sensor_at_start.run_requests  # files already processed start nothing
    assert [r.partition_key for r in cycle.sensor_after_resend.run_requests or []] == ["AG002/202603"]
    assert _materialised_partitions(cycle.instance) == {
        "AG001/202603": 1,
        "AG002/202603": 2,  # the first quarter, then the corrected re-send
        "AG003/202603": 1,
        "AG001/202606": 1,
        "AG002/202606": 1,
        "AG003/202606": 1,
    }


def test_two_releases_are_kept_immutable_and_listed(cycle: Cycle, capsys: pytest.CaptureFixture[str]) -> None:
    root = releases_dir(cycle.data_dir)
    assert [m["name"] for m in list_releases(root)] == ["2026-Q1", "2026-Q2"]
    q1, q2 = (read_manifest(root / n) for n in ("2026-Q1", "2026-Q2"))
    assert q1["data_cutoff"] <= "2026-03-31"
    assert q2["parameters"]["data_cutoff"] == "2026-06-30"
    assert {f["relative_path"] for f in q2["landing_files"] if f["status"] == "superseded"} == {
        "AG002/AG002_202603_persons.csv"
    }
    assert len(q2["batches"]) > len(q1["batches"])
    assert q1["code_version"]["commit"]
    assert q1["contract_version"]
    assert q1["run_id"] != q2["run_id"]
    assert (root / "2026-Q1" / "serving" / "parcours_funder.duckdb").exists()
    assert not (root / "2026-Q1" / "release.json").stat().st_mode & 0o222  # read-only
    assert main(["releases", "--data-dir", str(cycle.data_dir)]) == 0
    listing = capsys.readouterr().out
    assert "2026-Q1" in listing
    assert "2026-Q2" in listing


@pytest.mark.parametrize("name", ["2026-Q1", "2026-Q2"])
def test_each_release_is_reproduced_from_its_kept_inputs(cycle: Cycle, name: str) -> None:
    report = cycle.reproductions[name]
    assert report.same, (report.failures, report.differing, report.missing_inputs)
    assert report.tables_compared > 20
    # Figures released to funders and agencies are the same bit for bit; only the analysts' unrounded
    # sums of doubles may differ in their last bits (docs/operations.md).
    assert all(t.startswith("parcours_serving.duckdb:") for t in report.within_rounding), report.within_rounding


def test_the_amendment_is_kept_with_the_release(cycle: Cycle) -> None:
    root = releases_dir(cycle.data_dir)
    logs = {
        name: next(s for s in read_manifest(root / name)["studies"] if s["name"] == STUDY)["log"]
        for name in ("2026-Q1", "2026-Q2")
    }
    assert [e["event"] for e in logs["2026-Q1"]] == ["registered"]
    assert [e["event"] for e in logs["2026-Q2"]] == ["registered", "amended"]
    assert logs["2026-Q2"][1]["reason"] == AMENDMENT
    kept_log = (root / "2026-Q2" / "studies" / "registrations.jsonl").read_text(encoding="utf-8")
    assert [json.loads(line)["event"] for line in kept_log.splitlines()] == ["registered", "amended"]


def test_each_release_keeps_what_every_audience_was_shown_for_the_next_audit(cycle: Cycle) -> None:
    """Red team round 2 (F7): the next release of every audience is attacked with what it was shown before, matched
    by noise key; each kept release carries it in the analysts' copy, for the funders and for each agency."""
    shown = earlier_shown_cells(releases_dir(cycle.data_dir), "parcours_serving.duckdb")
    assert set(shown) == {"funders", "agency AG001", "agency AG002", "agency AG003"}
    for audience, releases in shown.items():
        assert len(releases) == 2, audience  # 2026-Q1 and 2026-Q2
        for boxes in releases:
            assert boxes, audience
            assert all(0 <= high - low <= 2 * MAX_NOISE + 1 for low, high in boxes.values())
