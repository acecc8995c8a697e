"""Pseudonymisation: keyed, stable, scoped by agency, and never without a real key outside demo mode."""

import json
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.ingest.pseudonyms import DEMO_KEY, PseudonymKeyError, load_key, pseudonym
from pipelines.settings import project_root


def test_pseudonyms_are_stable_keyed_and_scoped_by_agency() -> None:
    assert pseudonym(DEMO_KEY, "AG1", "P1") == pseudonym(DEMO_KEY, "AG1", "P1")
    assert pseudonym(DEMO_KEY, "AG1", "P1") != pseudonym(DEMO_KEY, "AG2", "P1")
    assert pseudonym(DEMO_KEY, "AG1", "P1") != pseudonym(b"another key of 32 bytes or more!!", "AG1", "P1")
    assert len(pseudonym(DEMO_KEY, "AG1", "P1")) == 32


def test_a_key_is_required_outside_demo_mode() -> None:
    with pytest.raises(PseudonymKeyError, match="PARCOURS_PSEUDONYM_KEY_FILE"):
        load_key({})
    assert load_key({"PARCOURS_DEMO": "1"}) == DEMO_KEY


def test_the_key_file_must_be_outside_the_repository_and_long_enough(tmp_path: Path) -> None:
    inside = project_root() / "pyproject.toml"
    with pytest.raises(PseudonymKeyError, match="inside the repository"):
        load_key({"PARCOURS_PSEUDONYM_KEY_FILE": str(inside)})
    short = tmp_path / "short.key"
    short.write_text("tiny")
    with pytest.raises(PseudonymKeyError, match="shorter than 32"):
        load_key({"PARCOURS_PSEUDONYM_KEY_FILE": str(short)})
    good = tmp_path / "good.key"
    good.write_text("0123456789abcdef" * 4 + "\n")
    assert load_key({"PARCOURS_PSEUDONYM_KEY_FILE": str(good)}) == b"0123456789abcdef" * 4
    with pytest.raises(PseudonymKeyError, match="cannot read"):
        load_key({"PARCOURS_PSEUDONYM_KEY_FILE": str(tmp_path / "missing.key")})


def test_ingest_without_a_key_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PARCOURS_DEMO")
    (tmp_path / "AGX").mkdir()
    (tmp_path / "AGX" / "AGX_agencies.csv").write_text("agency_id,model,departement\nAGX,remote,75\n")
    assert main(["ingest", str(tmp_path / "AGX"), "--warehouse", str(tmp_path / "w.duckdb")]) == 2
    assert "PARCOURS_PSEUDONYM_KEY_FILE" in capsys.readouterr().err


def test_ingest_json_reports_one_object_per_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "landing" / "AGX"
    folder.mkdir(parents=True)
    (folder / "AGX_202601_agencies.csv").write_text("agency_id,model,departement\nAGX,remote,75\nAGX,hybrid,75\n")
    (folder / "AGX_202601_persons.parquet").write_bytes(b"not parquet")
    code = main(["ingest", str(tmp_path / "landing"), "--json", "--warehouse", str(tmp_path / "w.duckdb")])
    assert code == 0
    reports = json.loads(capsys.readouterr().out)
    assert [set(r) for r in reports] == [
        {"file", "sha256", "status", "rows_in", "rows_accepted", "rows_quarantined", "reasons", "message"}
    ] * 2
    by_file = {r["file"]: r for r in reports}
    agencies = by_file["AGX/AGX_202601_agencies.csv"]
    assert (agencies["status"], agencies["rows_in"], agencies["reasons"]) == ("partial", 2, {"invalid_code": 1})
    broken = by_file["AGX/AGX_202601_persons.parquet"]
    assert (broken["status"], broken["reasons"]) == ("rejected", {"unreadable_file": 0})
    assert main(["ingest", str(tmp_path / "nowhere"), "--json"]) == 2
