"""The audit log's retention: entries older than 12 months are deleted, none appended meanwhile is lost."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from dashboards import audit
from dashboards.access import Viewer
from pipelines.cli import main
from pipelines.operations.audit_retention import purge_audit_log, retention_days
from pipelines.resources import ParcoursResource
from pipelines.schedules import audit_log_retention

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
VIEWER = Viewer("funder@demo.parcours.fr", "funder")


def _write(path: Path, days_ago: list[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"at": (NOW - timedelta(days=d)).isoformat(), "event": "page_view"}) for d in days_ago]
    path.write_text("\n".join([*lines, "not json"]) + "\n", encoding="utf-8")


def test_entries_older_than_the_retention_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _write(path, [400, 366, 364, 10])
    assert purge_audit_log(path, 365, NOW) == (3, 2)  # an undated line is kept
    ages = [(NOW - datetime.fromisoformat(e["at"])).days for e in map(json.loads, path.read_text().splitlines()[:2])]
    assert ages == [364, 10]
    assert purge_audit_log(path, 365, NOW) == (3, 0)
    assert purge_audit_log(tmp_path / "none.jsonl", 365, NOW) == (0, 0)


def test_the_retention_stays_within_six_to_twelve_months() -> None:
    assert retention_days({}) == 365
    assert retention_days({"PARCOURS_AUDIT_RETENTION_DAYS": "200"}) == 200
    for bad in ("30", "400"):
        with pytest.raises(ValueError, match="6 to 12 months"):
            retention_days({"PARCOURS_AUDIT_RETENTION_DAYS": bad})


def test_no_entry_appended_during_a_purge_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _write(path, [500] * 2000)

    def append() -> None:
        for _ in range(200):
            audit.record(path, VIEWER, "page_view", "overview")

    writers = [threading.Thread(target=append) for _ in range(4)]
    for writer in writers:
        writer.start()
    removed = 0
    for _ in range(20):
        removed += purge_audit_log(path, 365)[1]
    for writer in writers:
        writer.join()
    assert removed == 2000
    lines = path.read_text().splitlines()
    assert lines[0] == "not json"  # kept: an undated line is never guessed old
    assert len(lines) == 1 + 4 * 200  # every entry appended meanwhile is there


def test_the_command_and_the_daily_job_purge_the_log(tmp_path: Path) -> None:
    path = ParcoursResource(data_dir=str(tmp_path)).settings().audit_log
    _write(path, [800, 1])
    assert main(["purge-audit", "--data-dir", str(tmp_path)]) == 0
    assert len(path.read_text().splitlines()) == 2
    _write(path, [800, 1])
    result = audit_log_retention.execute_in_process(
        resources={"parcours": ParcoursResource(data_dir=str(tmp_path))}, instance=dg.DagsterInstance.ephemeral()
    )
    assert result.success
    assert len(path.read_text().splitlines()) == 2
