"""Rebuild a release from its kept inputs and prove that it gives the same figures (``parcours reproduce``).

The rebuild starts from an empty folder: each ingestion batch the release recorded is replayed in order,
from the kept copies of its landing files, on the day it was ingested; then the rest of the pipeline runs
with the release's own study files and registration log and its recorded parameters (data cut-off). Every
table of every file of the rebuilt publication is compared with the release's digests (``figures``).

What is not compared, and why: each file's ``serving_metadata`` (the time of publication and the run id
differ by nature), the quality reports and Data Docs (they carry times), and the ledger's and raw zone's
own timestamps. The code that runs is the code installed: when its git commit is not the release's, the
report says so first (check out the release's commit to rebuild it as it was).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from pipelines import warehouse
from pipelines.ingest.readers import describe_file
from pipelines.operations.batches import kept_path
from pipelines.operations.releases import STUDIES, code_version, figures, read_manifest

Say = Callable[[str], None]


@dataclass
class Reproduction:
    release: str
    work_dir: Path
    tables_compared: int = 0
    differing: list[str] = field(default_factory=list)
    """``file: table`` of each table whose rows differ, or that one side lacks."""
    missing_inputs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return not (self.differing or self.missing_inputs or self.failures) and self.tables_compared > 0


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def compare(expected: dict[str, dict[str, str]], found: dict[str, dict[str, str]]) -> tuple[int, list[str]]:
    """Tables compared, and those that differ (or exist on one side only), as ``file: table``."""
    differing = []
    compared = 0
    for file in sorted(set(expected) | set(found)):
        mine, theirs = expected.get(file, {}), found.get(file, {})
        for table in sorted(set(mine) | set(theirs)):
            compared += 1
            if mine.get(table) != theirs.get(table):
                differing.append(f"{file}: {table}")
    return compared, differing


def reproduce(release: Path, work_dir: Path, inputs: Path | None = None, say: Say | None = None) -> Reproduction:
    """Rebuild ``release`` under ``work_dir`` (which must be empty or absent) and compare its figures."""
    from pipelines.assets.ingestion import ingest_batch
    from pipelines.resources import ParcoursResource
    from pipelines.run import run_pipeline

    tell = say or (lambda _m: None)
    manifest = read_manifest(release)
    report = Reproduction(str(manifest["name"]), work_dir)
    if work_dir.exists() and any(work_dir.iterdir()):
        report.failures.append(f"{work_dir} is not empty: a rebuild starts from nothing")
        return report
    recorded = manifest.get("code_version", {})
    current = code_version()
    if recorded.get("commit") != current["commit"]:
        report.notes.append(
            f"the release was made by commit {recorded.get('commit')}, this is {current['commit']}: a difference "
            "may come from the code (check out the release's commit to rebuild it as it was)"
        )
    if recorded.get("uncommitted_changes"):
        report.notes.append("the release was made from a working tree with uncommitted changes")
    kept = inputs or Path(str(manifest["kept_inputs"]))
    parameters = manifest.get("parameters", {})
    landing = work_dir / "landing"
    landing.mkdir(parents=True)
    resource = ParcoursResource(
        data_dir=str(work_dir),
        landing_dir=str(landing),
        data_cutoff=str(parameters.get("data_cutoff", "")),
        release=str(manifest["name"]),
    )
    settings = resource.settings()
    environment = {"PARCOURS_STUDIES_DIR": str(release / STUDIES), "PARCOURS_TODAY": str(parameters.get("today", ""))}
    batches: dict[int, list[dict[str, object]]] = {}
    for row in manifest.get("batches", []):
        batches.setdefault(int(str(row["batch"])), []).append(row)
    with _environment(environment):
        for number in sorted(batches):
            rows = sorted(batches[number], key=lambda r: int(str(r["position"])))
            folder = work_dir / "replay" / f"{number:05d}"
            files = []
            for row in rows:
                if not row.get("kept"):
                    continue
                agency, sha, relative = str(row["agency_folder"]), str(row["sha256"]), str(row["relative_path"])
                source = kept_path(kept, agency, sha, relative)
                if not source.exists():
                    report.missing_inputs.append(f"{relative} ({sha[:12]})")
                    continue
                target = folder / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
                described = describe_file(target, folder, agency)
                if described is not None:
                    files.append(described)
            if report.missing_inputs:
                report.failures.append(f"{len(report.missing_inputs)} kept inputs are missing under {kept}")
                return report
            day = date.fromisoformat(str(rows[0]["ingestion_day"])[:10])
            tell(f"batch {number}: {len(files)} files, ingested on {day.isoformat()}")
            batch_settings = dataclasses.replace(settings, today=day)
            with warehouse.connect(settings.warehouse_path) as con:
                ingest_batch(con, batch_settings, files, str(rows[0]["partitions"]).split(","), "reproduce", tell)
        tell("models, studies and publication")
        outcome = run_pipeline(resource, log_level="OFF")
    if not outcome.success:
        report.failures += outcome.failures + [f"blocking check failed: {c}" for c in outcome.failed_checks]
        return report
    report.tables_compared, report.differing = compare(manifest["figures"], figures(settings.serving_path))
    return report
