"""Denials name who was refused; a crashed publication leaves nothing behind; ERROR checks block."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from dashboards.access import DEMO_ACCESS_FILE
from dashboards.audit import MAX_IDENTITY_LENGTH, clean_identity, read_log, record
from pipelines import warehouse
from pipelines.assets import model_checks
from pipelines.assets.model_checks import MODEL_CHECKS, ModelCheck, check_spec
from pipelines.cli import main
from tests.conftest import CASE_STUDIES, CASE_STUDY_CUTOFF, run_on

APP = str(Path(__file__).resolve().parent.parent / "dashboards" / "streamlit_app.py")


def test_a_denial_records_the_identity_cleaned(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    record(log, None, "denied", "sign_in", identity=" Stranger@Example.ORG\n", reason="no role")
    record(log, None, "denied", "sign_in", identity="x" * 1000)
    entries = read_log(log)
    assert entries[0]["user"] == "stranger@example.org"
    assert entries[0]["reason"] == "no role"
    assert "identity" not in entries[0]
    assert len(str(entries[1]["user"])) == MAX_IDENTITY_LENGTH
    assert clean_identity("a\u2028b\x00c") == "abc"
    assert clean_identity(None) is None


@pytest.mark.parametrize("mode", ["demo", "oidc"])
def test_a_refused_sign_in_is_audited_once_with_who_it_was(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mode: str
) -> None:
    monkeypatch.setenv("PARCOURS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PARCOURS_SERVING", str(tmp_path / "none.duckdb"))
    monkeypatch.setenv("PARCOURS_AUTH", mode)
    at = AppTest.from_file(APP, default_timeout=60)
    if mode == "demo":
        at.session_state["parcours_demo_user"] = "stranger@example.org"
    else:
        monkeypatch.setenv("PARCOURS_ACCESS_FILE", str(DEMO_ACCESS_FILE))
        at.user = {"is_logged_in": True, "email": "Stranger@Example.org"}
    at.run()
    at.run()
    assert at.title[0].value == "Accès refusé"  # French by default
    denied = [e for e in read_log(tmp_path / "audit" / "audit.jsonl") if e["event"] == "denied"]
    assert [(e["user"], e["page"]) for e in denied] == [("stranger@example.org", "sign_in")]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_snapshot_temporaries_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    dead, alive = _dead_pid(), os.getppid()
    stale = tmp_path / f".parcours_serving.20260101T000000.{dead}.tmp"
    stale_wal = tmp_path / f".parcours_serving.20260101T000000.{dead}.tmp.wal"
    live = tmp_path / f".parcours_serving.20260101T000001.{alive}.tmp"
    old_live = tmp_path / f".parcours_analyst.20260101T000002.{alive}.tmp.wal"
    kept = [tmp_path / "parcours_serving.duckdb", tmp_path / "notes.tmp", tmp_path / ".hidden"]
    for path in [stale, stale_wal, live, old_live, *kept]:
        path.write_bytes(b"x")
    ancient = time.time() - warehouse.STALE_AFTER_SECONDS - 60
    os.utime(old_live, (ancient, ancient))
    removed = warehouse.remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([stale, stale_wal, old_live])
    assert all(p.exists() for p in [live, *kept])
    assert warehouse.remove_stale_temporaries(tmp_path / "missing") == []


def test_error_checks_block_and_warnings_do_not() -> None:
    for check in MODEL_CHECKS:
        assert check_spec(check).blocking == (check.severity == dg.AssetCheckSeverity.ERROR), check.name


RECONCILIATION = "reconciles_with_distinct_admissions"
"""An ERROR check on the outcomes mart (it replaced reconciles_with_the_fact_table in the worlds merge)."""


def test_a_failing_reconciliation_check_stops_the_snapshot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert any(c.name == RECONCILIATION for c in model_checks.MODEL_CHECKS), "the test must fail a check that exists"
    failing = tuple(
        ModelCheck(c.asset, c.name, c.description, "select 1") if c.name == RECONCILIATION else c
        for c in model_checks.MODEL_CHECKS
    )
    monkeypatch.setattr("pipelines.assets.models.MODEL_CHECKS", failing)
    serving = tmp_path / "serving"
    serving.mkdir()
    leftover = serving / f".parcours_serving.20260101T000000.{_dead_pid()}.tmp"
    leftover.write_bytes(b"half a snapshot")
    run = run_on(CASE_STUDIES, tmp_path, CASE_STUDY_CUTOFF)
    assert not run.outcome.success
    assert any(RECONCILIATION in c for c in run.outcome.failed_checks)
    assert not run.settings.serving_path.exists()
    assert not leftover.exists()
    assert str(leftover) in run.outcome.removed_leftovers


def test_a_run_where_an_agency_loses_all_its_persons_fails_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    landing = tmp_path / "landing"
    shutil.copytree(CASE_STUDIES, landing, ignore=shutil.ignore_patterns("*.md"))
    persons = landing / "AGI" / "AGI_202512_persons.csv"
    # The issue's file: a byte-order mark, and the persons' birth years gone missing.
    text = persons.read_text().replace("birth_year,", "annee,")
    persons.write_bytes(b"\xef\xbb\xbf" + text.encode())
    code = main(["run", "--data-dir", str(tmp_path), "--landing", str(landing), "--data-cutoff", CASE_STUDY_CUTOFF,
                 "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert "no_agency_loses_an_entity" in err
    assert "AGI has no persons stored" in err
    assert "missing_required_column" in err
    assert not (tmp_path / "serving" / "parcours_serving.duckdb").exists()


def test_snapshots_written_and_read_back_through_shared_connections_keep_every_table(tmp_path: Path) -> None:
    """The publication writes every audience's file through one in-memory connection and reads them back through
    another (``write_snapshot``/``read_tables`` with ``con``): each file reads back with the same tables, columns,
    types and rows as through a connection of its own, and a write that fails leaves neither a file nor an
    attachment or a transaction open on the shared connection."""
    frames = {
        "counts": pl.DataFrame({"k": ["a", "b", "c"], "n": [11, None, 40], "share": [0.5, None, 1 / 3]}),
        "days": pl.DataFrame(
            {"day": [date(2026, 6, 30), None], "flag": [True, None], "at": [datetime(2026, 7, 1, 8, 30), None]}
        ),
        "empty": pl.DataFrame(schema={"x": pl.String, "y": pl.Int64}),
    }
    writer, reader = warehouse.memory_connection(), warehouse.memory_connection()
    try:
        with pytest.raises(ValueError, match="not a valid SQL identifier"):
            warehouse.write_snapshot(tmp_path / "bad.duckdb", {**frames, "Bad-Name": frames["counts"]}, {}, con=writer)
        assert not list(tmp_path.iterdir())
        written = [
            warehouse.write_snapshot(tmp_path / f"{name}.duckdb", frames, {"release": name}, con=writer)
            for name in ("first", "second")
        ]
        for path in written:
            shared = warehouse.read_tables(path, exclude=("serving_metadata",), con=reader)
            alone = warehouse.read_tables(path, exclude=("serving_metadata",))
            for tables in (shared, alone):
                assert list(tables) == sorted(frames)
                assert all(tables[t].schema == frames[t].schema and tables[t].equals(frames[t]) for t in frames)
            assert warehouse.read_tables(path, con=reader)["serving_metadata"].to_dicts()[0]["key"] == "release"
        assert warehouse.scalar(writer, "select count(*) from duckdb_databases() where not internal") == 1
    finally:
        writer.close()
        reader.close()
