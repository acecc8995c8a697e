"""Registered studies: a study's plan is fixed, with its hash, date and author, before any outcome is seen.

As a statistical analysis plan is registered before unblinding, a study file is registered
(``parcours register STUDY --by NAME``) before the pipeline first computes its outcomes; any later change
is an amendment with a reason (``parcours amend STUDY --reason ... --by NAME``). Both go to an append-only
log beside the study files (``registrations.jsonl``), versioned with them; every result carries the log.
The pipeline refuses a study that is not registered, or whose file no longer matches its last entry.

The hash is of the study as YAML reads it (keys sorted, JSON-encoded), not of the file's bytes: a comment
or a line break changes no plan and needs no amendment; any value that shapes an estimate does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.impact.spec import load_study, read_yaml, studies_dir
from pipelines.ingest.privacy import find_identifiers

LOG_NAME = "registrations.jsonl"
MIN_REASON_WORDS = 4


class RegistrationError(ValueError):
    """A registration or an amendment that cannot be recorded, or a study the pipeline must refuse."""


GUARDED_FIELDS = ("reason", "by")
"""Words typed at the command line that every release shows funders with the study's results."""


def identifier_kinds(entry: dict[str, str]) -> dict[str, set[str]]:
    """The kinds of direct identifier the privacy guard finds in an entry's free text, by field."""
    found = {f: find_identifiers(entry.get(f) or "", free_text=True) for f in GUARDED_FIELDS}
    return {f: kinds for f, kinds in found.items() if kinds}


def _refuse_identifiers(reason: str, by: str) -> None:
    found = identifier_kinds({"reason": reason, "by": by})
    if found:
        where = "; ".join(f"--{f}: {', '.join(sorted(k))}" for f, k in sorted(found.items()))
        raise RegistrationError(
            f"the text looks like it holds a direct identifier ({where}); it would be shown to funders with every "
            "result: write the reason without names, numbers, addresses or dates of a person"
        )


def released_log(log: Sequence[dict[str, str]]) -> list[dict[str, Any]]:
    """A study's log as a release carries it: an entry whose free text the privacy guard flags (written before
    the guard, or by hand) loses that text, and says which field was withheld (``not_shown``)."""
    out: list[dict[str, Any]] = []
    for entry in log:
        found = identifier_kinds(entry)
        kept: dict[str, Any] = {k: ("" if k in found else v) for k, v in entry.items()}
        if found:
            kept["not_shown"] = sorted(found)
        out.append(kept)
    return out


@dataclass(frozen=True)
class Entry:
    study: str
    event: str
    """``registered`` or ``amended``."""
    sha256: str
    at: str
    by: str
    reason: str = ""
    version: str = ""

    def as_json(self) -> dict[str, str]:
        return asdict(self)


def log_path(folder: Path | None = None) -> Path:
    return (folder or studies_dir()) / LOG_NAME


def plan_hash(path: Path) -> str:
    """The hash of a study file's content as read (comments and layout left out)."""
    content = read_yaml(path.read_text(encoding="utf-8"))
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def study_files(folder: Path | None = None) -> dict[str, Path]:
    """Each study's name and its file (a study is named inside its file)."""
    found: dict[str, Path] = {}
    for path in sorted((folder or studies_dir()).glob("*.yaml")):
        found[load_study(path).name] = path
    return found


def read_log(folder: Path | None = None) -> list[Entry]:
    path = log_path(folder)
    if not path.exists():
        return []
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(Entry(**json.loads(line)))
        except (ValueError, TypeError) as exc:
            raise RegistrationError(f"{path.name}, line {number}: not a registration entry ({exc})") from None
    return entries


def history(study: str, entries: Sequence[Entry]) -> list[Entry]:
    """The study's registration, then its amendments, in order."""
    return [e for e in entries if e.study == study]


def _append(folder: Path | None, entry: Entry) -> Entry:
    with log_path(folder).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry.as_json(), ensure_ascii=False, sort_keys=True) + "\n")
    return entry


def _now(at: datetime | None) -> str:
    return (at or datetime.now(UTC)).isoformat(timespec="seconds")


def _file_of(study: str, folder: Path | None) -> Path:
    files = study_files(folder)
    if study not in files:
        raise RegistrationError(f"no study named {study!r} in {folder or studies_dir()} (known: {', '.join(files)})")
    return files[study]


def register(study: str, by: str, folder: Path | None = None, at: datetime | None = None) -> Entry:
    """Record the study's plan as it stands (validated first: a plan that cannot run is not registered)."""
    if not by.strip():
        raise RegistrationError("say who registers the study (--by NAME)")
    _refuse_identifiers("", by)
    path = _file_of(study, folder)
    spec = load_study(path)
    past = history(study, read_log(folder))
    if past:
        raise RegistrationError(
            f"{study} was registered on {past[0].at} by {past[0].by}; a change is an amendment: "
            f"parcours amend {study} --reason '...' --by NAME"
        )
    return _append(folder, Entry(study, "registered", plan_hash(path), _now(at), by.strip(), "", spec.version))


def amend(study: str, reason: str, by: str, folder: Path | None = None, at: datetime | None = None) -> Entry:
    """Record a change to a registered study, with the reason the results will be shown with."""
    if not by.strip():
        raise RegistrationError("say who amends the study (--by NAME)")
    if len(reason.split()) < MIN_REASON_WORDS:
        raise RegistrationError(f"write down why the plan changed (at least {MIN_REASON_WORDS} words in --reason)")
    _refuse_identifiers(reason, by)
    path = _file_of(study, folder)
    spec = load_study(path)
    past = history(study, read_log(folder))
    if not past:
        raise RegistrationError(f"{study} is not registered yet: parcours register {study} --by NAME")
    current = plan_hash(path)
    if past[-1].sha256 == current:
        raise RegistrationError(f"{study} has not changed since its last entry ({past[-1].at}): nothing to amend")
    reason = " ".join(reason.split())
    return _append(folder, Entry(study, "amended", current, _now(at), by.strip(), reason, spec.version))


def registration_problem(study: str, folder: Path | None = None) -> str:
    """Why the pipeline must refuse the study, or an empty string when its file is its last registered plan."""
    path = _file_of(study, folder)
    past = history(study, read_log(folder))
    if not past:
        return (
            f"study {study} is not registered: its plan must be fixed before its outcomes are computed "
            f"(parcours register {study} --by NAME)"
        )
    if past[-1].sha256 != plan_hash(path):
        return (
            f"study {study} changed since its {past[-1].event} entry of {past[-1].at}: an unrecorded change is "
            f"refused; record it with parcours amend {study} --reason '...' --by NAME"
        )
    return ""
