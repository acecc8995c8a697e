"""Rebuild a release from its kept inputs and prove that it gives the same figures (``parcours reproduce``).

The rebuild starts from an empty folder: each ingestion batch the release recorded is replayed in order,
from the kept copies of its landing files, on the day it was ingested; then the rest of the pipeline runs
with the release's own study files and registration log and its recorded parameters (data cut-off). Every
table of every file of the rebuilt publication is compared with the release's digests (``figures``).

What is not compared, and why: each file's ``serving_metadata`` (the time of publication and the run id
differ by nature), the columns that record when a step ran (``ingested_at``, ``checked_at``), the quality
reports and Data Docs (they carry times). What is compared within rounding, and why: a table whose
digest differs is read back and compared value by value; floating-point values that differ in their last
bits only (relative difference under 1e-12) are reported apart. DuckDB sums floating-point values on
several threads, in an order that varies from run to run, so a sum of doubles (an expected count in the
agencies' benchmark, say) can change in its last bit; the figures released to funders and agencies are
rounded and perturbed from such values, and are compared bit for bit. The code that runs is the code
installed: when its git commit is not the release's, the report says so first (check out the release's
commit to rebuild it as it was).
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

import polars as pl

from pipelines import warehouse
from pipelines.ingest.readers import describe_file
from pipelines.operations.batches import kept_path
from pipelines.operations.releases import SERVING, STUDIES, code_version, figures, read_manifest, run_time_columns

Say = Callable[[str], None]


@dataclass
class Reproduction:
    release: str
    work_dir: Path
    tables_compared: int = 0
    within_rounding: list[str] = field(default_factory=list)
    """``file: table`` of each table equal to the release's only within floating-point rounding."""
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
    report.tables_compared, differing = compare(manifest["figures"], figures(settings.serving_path))
    original = release / SERVING
    for item in differing:
        file, _, table = item.partition(": ")
        if equal_within_rounding(original / file, settings.serving_path.parent / file, table):
            report.within_rounding.append(item)
        else:
            report.differing.append(item)
    return report


RELATIVE_TOLERANCE = 1e-12


def equal_within_rounding(left: Path, right: Path, table: str) -> bool:
    """The same rows in both files' ``table``, floating-point values within ``RELATIVE_TOLERANCE``."""
    if not (left.exists() and right.exists()):
        return False
    try:
        a = warehouse.read_tables(left)[table]
        b = warehouse.read_tables(right)[table]
    except KeyError:
        return False
    a, b = a.drop(run_time_columns(a)), b.drop(run_time_columns(b))
    if a.schema != b.schema or a.height != b.height:
        return False
    exact = [c for c, t in a.schema.items() if t == pl.String or t.is_integer() or t.is_temporal() or t == pl.Boolean]
    a = a.sort(exact, nulls_last=True)
    b = b.sort(exact, nulls_last=True)
    for column, kind in a.schema.items():
        if kind.is_float():
            x, y = a[column], b[column]
            if not (x.is_null() == y.is_null()).all():
                return False
            pair = pl.DataFrame({"x": x, "y": y})
            close = pair.select(
                (
                    (pl.col("x") - pl.col("y")).abs()
                    <= RELATIVE_TOLERANCE * pl.max_horizontal(pl.col("x").abs(), pl.col("y").abs())
                )
                | (pl.col("x") == pl.col("y"))
            ).to_series()
            if not close.fill_null(True).all():
                return False
        elif not a[column].equals(b[column]):
            return False
    return True
