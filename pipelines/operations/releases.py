"""Releases: each publication kept as a named, immutable folder that can be listed, opened and rebuilt.

A release (``<data dir>/releases/2026-Q3/``) holds what the dashboards opened when it was published, and
what is needed to prove it again years later:

* ``serving/``: the analysts' snapshot, the funders' file, each agency's file and the release summary,
  exactly as swapped into service;
* ``studies/``: the study files and their registration log as they stood (``pipelines.impact.registration``);
* ``release.json``: the name, the run id, the code version (git commit), the contract version, the
  run's parameters (data cut-off, day of ingestion), each study's hash with its registration and
  amendments, the landing files current at publication with their hashes, the ingestion batches in
  order (which ``parcours reproduce`` replays from the kept inputs), the raw zone's manifest, and a
  digest of every table of every file (``figures``), which a reproduction must match.

The folder is written under a temporary name and renamed into place, then made read-only; a name that
exists is never written again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from contextlib import closing
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from pipelines import warehouse
from pipelines.impact.registration import LOG_NAME, history, plan_hash, read_log, released_log, study_files
from pipelines.publication.release import (
    FUNDER_SCHEMAS,
    SHOWN_CELLS,
    EarlierRelease,
    NoiseBoxes,
    agency_dir,
    funder_path,
    shown_cells_by_audience,
    summary_path,
)
from pipelines.settings import project_root

MANIFEST = "release.json"
SERVING = "serving"
STUDIES = "studies"
NAME = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$")


class ReleaseError(ValueError):
    """A release that cannot be written or read as asked."""


def releases_dir(data_dir: Path) -> Path:
    return data_dir / "releases"


def quarter_of(day: date) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def previous_quarter_end(day: date) -> date:
    """The last day of the quarter before ``day``'s (the quarter a schedule on ``day`` publishes)."""
    first_month = 3 * ((day.month - 1) // 3) + 1
    start = date(day.year, first_month, 1)
    return date.fromordinal(start.toordinal() - 1)


def check_name(name: str) -> str:
    if not NAME.match(name) or ".." in name:
        raise ReleaseError(f"{name!r} cannot name a release (letters, digits, '.', '_' and '-', e.g. 2026-Q3)")
    return name


def free_name(root: Path, wanted: str) -> str:
    """``wanted`` when no release has it, else its next revision (``2026-Q3.2``, ``2026-Q3.3``...)."""
    check_name(wanted)
    if not (root / wanted).exists():
        return wanted
    revision = 2
    while (root / f"{wanted}.{revision}").exists():
        revision += 1
    return f"{wanted}.{revision}"


def code_version() -> dict[str, Any]:
    """The git commit of the code that ran (``PARCOURS_CODE_VERSION`` where the code is deployed without
    git), and whether the working tree had uncommitted changes (then the commit alone cannot rebuild it)."""
    declared = os.environ.get("PARCOURS_CODE_VERSION", "").strip()
    if declared:
        return {"commit": declared, "uncommitted_changes": False}
    git = shutil.which("git")
    if git is None:
        return {"commit": "unknown", "uncommitted_changes": True}
    try:
        commit = subprocess.run(  # noqa: S603 (git, found on PATH, with fixed arguments)
            [git, "rev-parse", "HEAD"], cwd=project_root(), capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(  # noqa: S603
            [git, "status", "--porcelain", "--untracked-files=no"],
            cwd=project_root(),
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "uncommitted_changes": True}
    return {"commit": commit, "uncommitted_changes": bool(dirty)}


def serving_files(serving: Path) -> list[Path]:
    """The files of a publication, as ``publish_release`` swaps them in."""
    files = [serving, funder_path(serving), summary_path(serving)]
    files += sorted(agency_dir(serving).glob("*.duckdb"))
    return [f for f in files if f.exists()]


def run_time_columns(frame: pl.DataFrame) -> list[str]:
    """Columns that record when a step ran (``ingested_at``, ``checked_at``...): times, not figures."""
    return [c for c, t in frame.schema.items() if c.endswith("_at") and isinstance(t, pl.Datetime)]


def table_digest(frame: pl.DataFrame) -> str:
    """A digest of a table's rows, whatever their order: each row as JSON (floats in their shortest exact
    form, so equal digests mean equal bits), the lines sorted, with the columns and their types. Columns
    that record when a step ran are left out (``run_time_columns``)."""
    frame = frame.drop(run_time_columns(frame))
    header = json.dumps([[c, str(t)] for c, t in frame.schema.items()])
    lines = sorted(frame.write_ndjson().splitlines()) if frame.height else []
    return hashlib.sha256("\n".join([header, *lines]).encode("utf-8")).hexdigest()


def figures(serving: Path) -> dict[str, dict[str, str]]:
    """Every table of every file of a publication, by file (relative to the serving folder) and table."""
    digests: dict[str, dict[str, str]] = {}
    with closing(warehouse.memory_connection()) as reader:  # one connection reads every file
        for path in serving_files(serving):
            if path.suffix != ".duckdb":
                continue
            tables = warehouse.read_tables(path, exclude=("serving_metadata",), con=reader)
            digests[path.relative_to(serving.parent).as_posix()] = {
                t: table_digest(f) for t, f in sorted(tables.items())
            }
    return digests


def studies_record(folder: Path) -> list[dict[str, Any]]:
    """Each study's file, plan hash, registration and amendments (the log as it stands)."""
    entries = read_log(folder)
    record = []
    for name, path in study_files(folder).items():
        log = released_log([e.as_json() for e in history(name, entries)])  # the privacy guard on free text
        record.append({"name": name, "file": path.name, "sha256": plan_hash(path), "log": log})
    return record


def write_release(
    root: Path,
    name: str,
    serving: Path,
    studies_folder: Path,
    manifest: Mapping[str, Any],
) -> Path:
    """Copy the publication in service and the studies into ``root/name`` with its manifest; never overwrite."""
    check_name(name)
    target = root / name
    if target.exists():
        raise ReleaseError(f"release {name} exists and releases are never changed: publish under a new name")
    root.mkdir(parents=True, exist_ok=True)
    staged = root / f".{name}.{os.getpid()}.tmp"
    if staged.exists():
        shutil.rmtree(staged)
    try:
        for path in serving_files(serving):
            copy = staged / SERVING / path.relative_to(serving.parent)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
        (staged / STUDIES).mkdir(parents=True)
        for path in [*sorted(studies_folder.glob("*.yaml")), studies_folder / LOG_NAME]:
            if path.exists():
                shutil.copyfile(path, staged / STUDIES / path.name)
        full = {
            "name": name,
            **manifest,
            "studies": studies_record(studies_folder),
            "figures": figures(staged / SERVING / serving.name),
        }
        (staged / MANIFEST).write_text(json.dumps(full, indent=2, ensure_ascii=False, default=str) + "\n", "utf-8")
        staged.rename(target)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    for path in sorted(target.rglob("*"), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)
    target.chmod(0o555)
    return target


IN_SERVICE = "release.json"
"""Beside the files in service: the manifest of the release they are, with ``kept_at`` (its folder)."""


def mark_in_service(release: Path, serving: Path) -> Path:
    """Put the release's manifest beside the files in service, so that a reader of those files (the dashboards)
    finds which release they are, its studies' logs and the kept releases beside it."""
    manifest = read_manifest(release)
    manifest["kept_at"] = str(release.resolve())
    target = serving.with_name(IN_SERVICE)
    staged = target.with_name(f".{target.name}.tmp")
    staged.write_text(json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    staged.replace(target)
    return target


def manifest_candidates(serving: Path) -> tuple[Path, Path]:
    """Where the manifest of ``serving``'s release may be, in the order ``manifest_for`` looks: beside the files in
    service, or the kept release's own."""
    return serving.with_name(IN_SERVICE), serving.parent.parent / MANIFEST


def manifest_for(serving: Path) -> dict[str, Any] | None:
    """The manifest of the release whose files ``serving`` is one of: in service, or a kept release's."""
    for candidate in manifest_candidates(serving):
        if candidate.exists():
            data: dict[str, Any] = json.loads(candidate.read_text(encoding="utf-8"))
            data.setdefault("kept_at", str(candidate.parent))
            return data
    return None


def read_manifest(release: Path) -> dict[str, Any]:
    path = release / MANIFEST
    if not path.exists():
        raise ReleaseError(f"no release at {release}")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def list_releases(root: Path) -> list[dict[str, Any]]:
    """Every kept release's manifest, oldest first (by publication time, then name)."""
    if not root.is_dir():
        return []
    kept = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).exists()]
    found = [read_manifest(p) for p in kept]
    return sorted(found, key=lambda m: (str(m.get("published_at", "")), str(m["name"])))


def release_path(root: Path, name: str) -> Path:
    path = root / check_name(name)
    if not (path / MANIFEST).exists():
        known = ", ".join(m["name"] for m in list_releases(root)) or "none"
        raise ReleaseError(f"no release named {name} under {root} (releases: {known})")
    return path


def serving_of(release: Path, serving_name: str = "parcours_serving.duckdb") -> Path:
    """The analysts' snapshot of a release; the funders' and agencies' files sit beside it."""
    return release / SERVING / serving_name


def earlier_funder_releases(root: Path, serving_name: str) -> tuple[EarlierRelease, ...]:
    """Every kept release as funders were shown it, with its true values, for the auditor
    (``pipelines.publication.release.cross_release_bounds``)."""
    found = []
    with closing(warehouse.memory_connection()) as reader:  # one connection reads every kept file
        for manifest in list_releases(root):
            serving = serving_of(root / str(manifest["name"]), serving_name)
            funders = funder_path(serving)
            if not (serving.exists() and funders.exists()):
                continue
            shown = warehouse.read_tables(funders, exclude=("serving_metadata",), con=reader)
            # Of the analysts' copy, the funders' tables only (with their true values), not every mart.
            true = warehouse.read_tables(serving, con=reader, include=tuple(FUNDER_SCHEMAS))
            found.append(EarlierRelease(str(manifest["name"]), shown, true))
    return tuple(found)


def earlier_shown_cells(root: Path, serving_name: str) -> dict[str, tuple[NoiseBoxes, ...]]:
    """What each audience was shown in every kept release, by noise key (the analysts' copy of each release
    keeps it since red-team round 2; a release kept before holds none and adds nothing here), oldest first."""
    found: dict[str, list[NoiseBoxes]] = {}
    with closing(warehouse.memory_connection()) as reader:  # one connection reads every kept file
        for manifest in list_releases(root):
            serving = serving_of(root / str(manifest["name"]), serving_name)
            if not serving.exists():
                continue
            table = warehouse.read_tables(serving, con=reader, include=(SHOWN_CELLS,)).get(SHOWN_CELLS)
            if table is None:
                continue
            for audience, boxes in shown_cells_by_audience(table).items():
                found.setdefault(audience, []).append(boxes)
    return {audience: tuple(boxes) for audience, boxes in found.items()}
