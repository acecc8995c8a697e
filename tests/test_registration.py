"""Registered studies: the plan's hash, date and author before any outcome; amendments with a reason."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from pipelines.cli import main
from pipelines.impact.registration import (
    RegistrationError,
    amend,
    history,
    plan_hash,
    read_log,
    register,
    registration_problem,
    study_files,
)
from pipelines.impact.spec import read_yaml, studies_dir

STUDY = "carer_burden"
WHEN = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copyfile(studies_dir() / f"{STUDY}.yaml", tmp_path / f"{STUDY}.yaml")
    return tmp_path


def test_the_repository_s_studies_are_registered_as_they_stand() -> None:
    names = list(study_files())
    assert names
    for name in names:
        assert registration_problem(name) == "", name


def test_the_fast_yaml_parser_reads_every_study_as_the_pure_python_one() -> None:
    # The plan hashes of the registration log were taken from ``yaml.safe_load``'s values: libyaml's parser
    # (``spec.SAFE_LOADER``) must read the very same values, types included, or every study would look changed.
    paths = sorted(studies_dir().glob("*.yaml"))
    assert paths
    for path in paths:
        text = path.read_text(encoding="utf-8")
        expected = yaml.load(text, Loader=yaml.SafeLoader)
        found = read_yaml(text)
        assert found == expected, path.name
        assert repr(found) == repr(expected), path.name


def test_an_unregistered_study_is_refused_with_the_command_to_run(folder: Path) -> None:
    problem = registration_problem(STUDY, folder)
    assert "not registered" in problem
    assert f"parcours register {STUDY} --by NAME" in problem


def test_registration_records_hash_date_and_author(folder: Path) -> None:
    entry = register(STUDY, "Claire Martin", folder, at=WHEN)
    assert entry.sha256 == plan_hash(folder / f"{STUDY}.yaml")
    assert (entry.at, entry.by, entry.event) == ("2026-07-01T09:00:00+00:00", "Claire Martin", "registered")
    assert registration_problem(STUDY, folder) == ""
    with pytest.raises(RegistrationError, match="amendment"):
        register(STUDY, "Someone Else", folder)


def test_a_comment_is_no_change_but_a_value_is(folder: Path) -> None:
    register(STUDY, "Claire Martin", folder)
    path = folder / f"{STUDY}.yaml"
    path.write_text("# a note that changes no plan\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    assert registration_problem(STUDY, folder) == ""
    path.write_text(path.read_text(encoding="utf-8").replace("seed: 2026", "seed: 2027"), encoding="utf-8")
    problem = registration_problem(STUDY, folder)
    assert "changed since its registered entry" in problem
    assert f"parcours amend {STUDY}" in problem


def test_an_amendment_needs_a_reason_and_a_change(folder: Path) -> None:
    register(STUDY, "Claire Martin", folder)
    with pytest.raises(RegistrationError, match="nothing to amend"):
        amend(STUDY, "the seed was changed for a reason", "Claire Martin", folder)
    path = folder / f"{STUDY}.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("seed: 2026", "seed: 2027"), encoding="utf-8")
    with pytest.raises(RegistrationError, match="why"):
        amend(STUDY, "typo", "Claire Martin", folder)
    entry = amend(STUDY, "a new seed after the software update", "Claire Martin", folder, at=WHEN)
    assert registration_problem(STUDY, folder) == ""
    log = history(STUDY, read_log(folder))
    assert [e.event for e in log] == ["registered", "amended"]
    assert log[-1] == entry
    assert entry.reason == "a new seed after the software update"


def test_an_invalid_plan_is_not_registered(folder: Path) -> None:
    path = folder / f"{STUDY}.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("design: aipw", "design: guesswork"), encoding="utf-8")
    with pytest.raises(ValueError, match="design"):
        register(STUDY, "Claire Martin", folder)


def test_the_commands_register_and_amend(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARCOURS_STUDIES_DIR", str(folder))
    assert main(["register", STUDY, "--by", "Claire Martin"]) == 0
    assert main(["register", STUDY, "--by", "Claire Martin"]) == 1
    path = folder / f"{STUDY}.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("seed: 2026", "seed: 2027"), encoding="utf-8")
    assert main(["amend", STUDY, "--reason", "a new seed after the update", "--by", "Claire Martin"]) == 0
    assert main(["amend", "no_such_study", "--reason", "a b c d e", "--by", "x"]) == 1


def test_an_amendment_whose_text_holds_a_direct_identifier_is_refused_and_never_shown(folder: Path) -> None:
    """Red-team F5: ``--reason`` and ``--by`` reach the funders' page and the plan's lines unguarded. The privacy
    guard now refuses them (naming the kind, never the value), and a log written before the guard loses the
    flagged text in every release and page (« non communiqué »)."""
    from pipelines.impact.registration import released_log
    from pipelines.presentation.registration import plan_lines

    register(STUDY, "Claire Martin", folder)
    path = folder / f"{STUDY}.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("seed: 2026", "seed: 2027"), encoding="utf-8")
    planted = "excluded Mme Dupont born 12/03/1941 at 12 rue des Lilas 75011 Paris, phone 06 12 34 56 78"
    with pytest.raises(RegistrationError, match="direct identifier") as refused:
        amend(STUDY, planted, "Claire Martin", folder)
    assert "Dupont" not in str(refused.value)
    assert "06 12" not in str(refused.value)
    with pytest.raises(RegistrationError, match="--by"):
        amend(STUDY, "a new seed after the software update", "claire.martin@example.org", folder)
    assert [e.event for e in history(STUDY, read_log(folder))] == ["registered"]  # nothing recorded
    old = [{"study": STUDY, "event": "amended", "sha256": "0" * 64, "at": "2026-07-01T09:00:00+00:00",
            "by": "Claire Martin", "reason": planted, "version": "1"}]  # fmt: skip
    released = released_log(old)
    assert released[0]["reason"] == ""
    assert released[0]["not_shown"] == ["reason"]
    assert released[0]["by"] == "Claire Martin"
    lines = " ".join(plan_lines(released, "fr"))
    assert "Dupont" not in lines
    assert "non communiqué" in lines
